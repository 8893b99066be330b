//! The demo gateway's command line; see the library for what it does.

use clap::Parser;

#[derive(Debug, Parser)]
#[command(version, about = "A demo relying party whose passkeys assertd verifies")]
struct Args {
    /// Where to serve the page.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
    /// assertd's gRPC endpoint.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    assertd: String,
    /// The relying party (must be configured in assertd, with this page's
    /// origin, e.g. http://localhost:8080).
    #[arg(long, default_value = "localhost")]
    rp_id: String,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!("demo gateway on http://{} (assertd at {})", listener.local_addr()?, args.assertd);
    assertd_demo_gateway::serve(listener, &args.assertd, &args.rp_id).await
}
