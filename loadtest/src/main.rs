//! The `assertd-loadgen` command line (see the library's documentation).

fn main() -> std::process::ExitCode {
    assertd_loadgen::main_with(clap::Parser::parse())
}
