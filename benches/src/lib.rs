//! assertd's criterion benches live in `benches/`; this crate's binary
//! `ratio-report` reads their results and prints the ratios the performance
//! targets are stated in.
