//! Issue 26 §4: the metrics and health listeners are bounded. Each holds at
//! most `limits.max_probe_connections` connections (more are closed as
//! they are accepted), each connection lives at most
//! `limits.probe_connection_seconds`, and a metrics request's headers must
//! arrive within 5 s. Red before: 8 000 idle connections stayed open (+206
//! MiB), and 500 with unfinished headers held 146 MiB.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn config() -> String {
    format!("health_listen = \"127.0.0.1:0\"\n{}\n[limits]\nmax_probe_connections = 4\nprobe_connection_seconds = 2\n", default_config())
}

/// Whether the server closed the connection (EOF or a reset), waiting at
/// most `wait` for it to do so.
fn closed_within(s: &mut TcpStream, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // a response, then the close
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => return false,
            Err(_) => return true,
        }
    }
}

/// Opens `n` idle connections; how many the server left open after a
/// moment, and the connections.
fn open_idle(addr: &str, n: usize) -> (usize, Vec<TcpStream>) {
    let mut conns: Vec<TcpStream> = (0..n).map(|_| TcpStream::connect(addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(300));
    let open = conns.iter_mut().map(|s| !closed_within(s, Duration::from_millis(50))).filter(|open| *open).count();
    (open, conns)
}

fn refused(server: &Server, listener: &str) -> u64 {
    let text = server.scrape();
    let key = format!("assertd_listener_connections_refused_total{{listener=\"{listener}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&key)).map_or(0, |v| v.trim().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_listeners_cap_and_age_their_connections() {
    let server = Server::start(&config());
    let health = server.line_field("health=");
    for (name, addr) in [("metrics", server.metrics.clone()), ("health", health.clone())] {
        let (open, mut conns) = open_idle(&addr, 10);
        assert_eq!(open, 4, "{name}: the cap holds 4 of 10 idle connections");
        // The ones kept are closed when their lifetime (2 s, plus 1 s of
        // grace for HTTP/2) is over.
        let started = Instant::now();
        for s in &mut conns {
            assert!(closed_within(s, Duration::from_secs(5)), "{name}: an idle connection outlived its lifetime");
        }
        assert!(started.elapsed() < Duration::from_secs(4), "{name}: closed after {:?}", started.elapsed());
    }
    // Freed: both serve again, and the refusals are counted.
    assert!(server.scrape().contains("assertd_assertions_total") || server.scrape().contains("# TYPE"));
    assert_eq!(refused(&server, "metrics"), 6);
    assert_eq!(refused(&server, "health"), 6);
    let ch = tonic::transport::Channel::from_shared(format!("http://{health}")).unwrap().connect().await.unwrap();
    let r = tonic_health::pb::health_client::HealthClient::new(ch)
        .check(tonic_health::pb::HealthCheckRequest { service: "liveness".into() })
        .await
        .unwrap();
    assert_eq!(r.into_inner().status(), tonic_health::pb::health_check_response::ServingStatus::Serving);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_metrics_headers_are_cut_off() {
    // The default lifetime (30 s): the header timeout (5 s) is what ends it.
    let server = Server::start(&format!("{}\n[limits]\nmax_probe_connections = 4\n", default_config()));
    let mut slow = TcpStream::connect(&server.metrics).unwrap();
    let started = Instant::now();
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ").unwrap();
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(500));
        let _ = slow.write_all(b"aaaa");
    }
    assert!(closed_within(&mut slow, Duration::from_secs(8)), "unfinished headers held the connection");
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(4) && took < Duration::from_secs(8), "closed after {took:?}");
    // Headers over 16 KiB are refused at once.
    let mut big = TcpStream::connect(&server.metrics).unwrap();
    let _ = big.write_all(format!("GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n", "a".repeat(64 * 1024)).as_bytes());
    assert!(closed_within(&mut big, Duration::from_secs(2)), "oversized headers were buffered");
    // A normal scrape still works.
    assert!(server.scrape().starts_with("HTTP/1.1 200"));
}
