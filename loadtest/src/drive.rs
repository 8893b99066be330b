//! Driving the load: closed-loop callers (unary or streaming), open-loop
//! sends at intended times, and the run that ties them into a report.

use crate::args::Mode;
use crate::args::RunArgs;
use crate::checks::MAX_ATTEMPTS;
use crate::checks::Stats;
use crate::checks::attempts;
use crate::checks::error;
use crate::checks::histogram;
use crate::checks::record;
use crate::generator::Prepared;
use crate::generator::connect;
use crate::generator::prepare;
use crate::report::cpu_seconds;
use crate::report::quantiles;
use crate::report::rss_bytes;
use crate::report::scrape_cache;
use assertd_api::v1 as pb;
use assertd_api::v1::verification_service_client::VerificationServiceClient;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::time::Duration;
use std::time::Instant;
use tonic::transport::Channel;

/// Which requests a closed-loop caller sends: all of them cycling from
/// `start_at`, or (--counting) only its lane's, in order, once.
#[derive(Clone, Copy)]
pub(crate) struct Walk {
    pub(crate) start_at: usize,
    /// Some(lanes): step by `lanes`, and stop at the end.
    pub(crate) lanes: Option<usize>,
}

impl Walk {
    /// The `k`-th request of this walk, or None when a counting lane ran out.
    fn nth(&self, requests: &[Arc<Prepared>], k: usize, stats: &Stats) -> Option<Arc<Prepared>> {
        match self.lanes {
            None => Some(requests[(self.start_at + k) % requests.len()].clone()),
            Some(lanes) => {
                let p = requests.get(self.start_at + k * lanes).cloned();
                if p.is_none() {
                    stats.exhausted.store(true, Ordering::Relaxed);
                }
                p
            }
        }
    }
}

/// One closed-loop caller (unary, or one stream kept `depth` deep).
pub(crate) async fn caller(
    channel: Channel,
    requests: Arc<Vec<Arc<Prepared>>>,
    walk: Walk,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    stream: Option<usize>,
) {
    let mut client = VerificationServiceClient::new(channel).max_decoding_message_size(64 << 20);
    let mut k = 0;
    let Some(depth) = stream else {
        while !stop.load(Ordering::Relaxed) {
            let Some(p) = walk.nth(&requests, k, &stats) else { return };
            k += 1;
            unary_with_retries(&mut client, &p, &stats).await;
        }
        return;
    };
    // Streaming: keep `depth` requests in flight on the stream.
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::VerifyAssertionsStreamRequest>(depth.max(1));
    let mut responses = match client.verify_assertions_stream(tokio_stream::wrappers::ReceiverStream::new(rx)).await {
        Ok(r) => r.into_inner(),
        Err(e) => return error(&stats, &e, Duration::ZERO).await,
    };
    let mut in_flight = std::collections::VecDeque::new();
    for _ in 0..depth.max(1) {
        let Some(p) = walk.nth(&requests, k, &stats) else { break };
        k += 1;
        in_flight.push_back((p.clone(), Instant::now()));
        if tx.send(pb::VerifyAssertionsStreamRequest { assertions: p.assertions.clone(), ..Default::default() }).await.is_err() {
            return;
        }
    }
    while let Some((p, sent)) = in_flight.pop_front() {
        match responses.message().await {
            Ok(Some(r)) => record(&stats, &p, &r.verdicts, sent.elapsed()).await,
            Ok(None) => return,
            Err(e) => return error(&stats, &e, sent.elapsed()).await,
        }
        if !stop.load(Ordering::Relaxed)
            && let Some(next) = walk.nth(&requests, k, &stats)
        {
            k += 1;
            in_flight.push_back((next.clone(), Instant::now()));
            if tx.send(pb::VerifyAssertionsStreamRequest { assertions: next.assertions.clone(), ..Default::default() }).await.is_err() {
                return;
            }
        }
    }
}

/// One batch sent as a gRPC client with a retry policy sends it: a
/// RESOURCE_EXHAUSTED answer is retried after the server's
/// `grpc-retry-pushback-ms` (at once without one), the same request, with
/// `grpc-previous-rpc-attempts` on every retry (gRFC A6; grpc-go, grpc-java
/// and grpc-node send it), up to [`MAX_ATTEMPTS`]. The latency recorded is
/// what the caller waited for its answer: from the first send to the last
/// answer, pushback included. Each refused attempt is also counted and timed
/// on its own (`errors`, `rejected_latency`).
pub(crate) async fn unary_with_retries(client: &mut VerificationServiceClient<Channel>, p: &Prepared, stats: &Stats) {
    let first = Instant::now();
    for attempt in 0..MAX_ATTEMPTS {
        let mut req = tonic::Request::new(pb::VerifyAssertionsRequest { assertions: p.assertions.clone(), ..Default::default() });
        if attempt > 0 {
            req.metadata_mut().insert("grpc-previous-rpc-attempts", attempt.into());
        }
        let sent = Instant::now();
        match client.verify_assertions(req).await {
            Ok(r) => {
                attempts(stats, attempt + 1).await;
                return record(stats, p, &r.into_inner().verdicts, first.elapsed()).await;
            }
            Err(e) => {
                error(stats, &e, sent.elapsed()).await;
                if e.code() != tonic::Code::ResourceExhausted {
                    return;
                }
                if let Some(ms) = e.metadata().get("grpc-retry-pushback-ms").and_then(|v| v.to_str().ok()?.parse::<u64>().ok()) {
                    tokio::time::sleep(Duration::from_millis(ms.min(1000))).await;
                }
            }
        }
    }
    attempts(stats, MAX_ATTEMPTS + 1).await;
}

/// Open loop: requests at fixed intended times; latency counts from the
/// intended time, so a stall shows up in the tail instead of lowering the
/// offered rate (coordinated omission).
pub(crate) async fn open_loop(
    channels: Vec<Channel>,
    requests: Arc<Vec<Arc<Prepared>>>,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    rate: f64,
    max_outstanding: usize,
    counting: bool,
) {
    let interval = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let start = Instant::now();
    let outstanding = Arc::new(tokio::sync::Semaphore::new(max_outstanding));
    let mut n: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        let intended = start + interval.mul_f64(n as f64);
        tokio::time::sleep_until(intended.into()).await;
        if counting && n as usize >= requests.len() {
            stats.exhausted.store(true, Ordering::Relaxed);
            return;
        }
        let p = requests[(n as usize) % requests.len()].clone();
        let mut client =
            VerificationServiceClient::new(channels[(n as usize) % channels.len()].clone()).max_decoding_message_size(64 << 20);
        n += 1;
        let Ok(permit) = outstanding.clone().try_acquire_owned() else {
            *stats.errors.lock().await.entry("GeneratorBackpressure".into()).or_default() += 1;
            continue;
        };
        let stats = stats.clone();
        tokio::spawn(async move {
            let sent = Instant::now();
            let r = client.verify_assertions(pb::VerifyAssertionsRequest { assertions: p.assertions.clone(), ..Default::default() }).await;
            match r {
                Ok(r) => record(&stats, &p, &r.into_inner().verdicts, intended.elapsed()).await,
                // A rejection's cost is its round trip, from when it was sent.
                Err(e) => error(&stats, &e, sent.elapsed()).await,
            }
            drop(permit);
        });
    }
}

/// Runs a load and returns the report (see docs/development.md and BENCHMARKS.md).
pub async fn run(args: RunArgs) -> Result<serde_json::Value, String> {
    run_until(args, None).await
}

/// `run`, ending early when `stop` turns true: callers send nothing more,
/// and requests already sent are waited for (up to 30 s) and counted. So
/// with `stop` set just before a server is told to shut down, the report
/// covers exactly the requests sent before that.
pub async fn run_until(args: RunArgs, stop_when: Option<Arc<AtomicBool>>) -> Result<serde_json::Value, String> {
    if args.batch == 0 {
        return Err("--batch must be at least 1".into());
    }
    let mut channels = Vec::new();
    for _ in 0..args.connections.max(1) {
        channels.push(connect(&args.target).await?);
    }
    eprintln!("setup: {} credentials ({}), pool of {} assertions", args.credentials, args.algs.join(","), args.pool);
    let requests = Arc::new(prepare(&args, channels[0].clone()).await?);
    let stats = Arc::new(Stats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    match args.mode {
        Mode::Closed => {
            let (callers, depth) = args.callers();
            for c in 0..callers {
                let walk = if args.counting {
                    Walk { start_at: c, lanes: Some(callers) }
                } else {
                    Walk { start_at: c * requests.len() / callers, lanes: None }
                };
                tasks.push(tokio::spawn(caller(
                    channels[c % channels.len()].clone(),
                    requests.clone(),
                    walk,
                    stats.clone(),
                    stop.clone(),
                    args.stream.then_some(depth),
                )));
            }
        }
        Mode::Open => {
            tasks.push(tokio::spawn(open_loop(
                channels.clone(),
                requests.clone(),
                stats.clone(),
                stop.clone(),
                args.rate,
                args.max_outstanding,
                args.counting,
            )));
        }
    }
    tokio::time::sleep(Duration::from_secs_f64(args.warmup)).await;
    *stats.latency.lock().await = Some(histogram());
    *stats.interval.lock().await = Some(histogram());
    *stats.rejected.lock().await = Some(histogram());
    stats.measuring.store(true, Ordering::SeqCst);
    let rss_start = args.server_pid.and_then(rss_bytes);
    let mut rss_max = rss_start;
    let server_cpu0 = args.server_pid.and_then(|p| cpu_seconds(&p.to_string()));
    let cache0 = args.metrics.as_deref().and_then(scrape_cache);
    let self_cpu0 = cpu_seconds("self");
    let started = Instant::now();
    let mut last = (0u64, Instant::now());
    let stopped = || stop_when.as_ref().is_some_and(|s| s.load(Ordering::SeqCst));
    while started.elapsed().as_secs_f64() < args.duration
        && (args.requests == 0 || stats.rpcs.load(Ordering::Relaxed) < args.requests)
        && !stopped()
    {
        let tick = Duration::from_millis(1000).min(Duration::from_secs_f64(args.duration));
        let tick_started = Instant::now();
        while tick_started.elapsed() < tick && !stopped() {
            tokio::time::sleep(Duration::from_millis(5).min(tick)).await;
        }
        let a = stats.assertions.load(Ordering::Relaxed);
        let h = stats.interval.lock().await.replace(histogram());
        let (p50, p99) =
            h.as_ref().map_or((0.0, 0.0), |h| (h.value_at_quantile(0.5) as f64 / 1000.0, h.value_at_quantile(0.99) as f64 / 1000.0));
        let errors: u64 = stats.errors.lock().await.values().sum();
        if let Some(now) = args.server_pid.and_then(rss_bytes) {
            rss_max = Some(rss_max.map_or(now, |m| m.max(now)));
        }
        eprintln!(
            "[{:5.1}s] {:>9.0} assertions/s  errors {:>6}  mismatches {:>4}  p50 {:>7.2} ms  p99 {:>7.2} ms",
            started.elapsed().as_secs_f64(),
            (a - last.0) as f64 / last.1.elapsed().as_secs_f64(),
            errors,
            stats.mismatches.load(Ordering::Relaxed),
            p50,
            p99
        );
        last = (a, Instant::now());
    }
    let elapsed = started.elapsed().as_secs_f64();
    // Rates are of the window; answers to requests still in flight are
    // checked and counted below, but their time is not in `elapsed`.
    let (rpcs_window, assertions_window) = (stats.rpcs.load(Ordering::SeqCst), stats.assertions.load(Ordering::SeqCst));
    stop.store(true, Ordering::SeqCst);
    let server_cpu = args.server_pid.and_then(|p| cpu_seconds(&p.to_string())).zip(server_cpu0).map(|(b, a)| b - a);
    let self_cpu = cpu_seconds("self").zip(self_cpu0).map(|(b, a)| b - a);
    let cache1 = args.metrics.as_deref().and_then(scrape_cache);
    let hit_ratio = cache0.zip(cache1).map(|((h0, m0), (h1, m1))| (h1 - h0) / ((h1 - h0) + (m1 - m0)).max(1.0));
    let server_rss = args.server_pid.and_then(rss_bytes);
    // Requests already sent still count: wait for their answers.
    let wait = if stop_when.is_some() { Duration::from_secs(30) } else { Duration::from_secs(5) };
    for t in tasks {
        let _ = tokio::time::timeout(wait, t).await;
    }
    stats.measuring.store(false, Ordering::SeqCst);
    let latency = stats.latency.lock().await.take().unwrap_or_else(histogram);
    let rejected = stats.rejected.lock().await.take().unwrap_or_else(histogram);
    let rpcs = stats.rpcs.load(Ordering::Relaxed);
    let assertions = stats.assertions.load(Ordering::Relaxed);
    Ok(serde_json::json!({
        "mode": format!("{:?}", args.mode).to_lowercase(),
        "stream": args.stream,
        "batch": args.batch,
        "concurrency": args.concurrency,
        "callers": if args.mode == Mode::Closed { Some(args.callers().0) } else { None },
        "in_flight": if args.mode == Mode::Closed { Some(args.callers().0 * args.callers().1) } else { None },
        "counting": args.counting,
        "pool_exhausted": stats.exhausted.load(Ordering::Relaxed),
        "rate_rpcs_per_second": if args.mode == Mode::Open { Some(args.rate) } else { None },
        "algs": args.algs,
        "invalid_pct": args.invalid_pct,
        "unknown_pct": args.unknown_pct,
        "seconds": elapsed,
        "rpcs": rpcs,
        "assertions": assertions,
        "drained_rpcs": rpcs - rpcs_window,
        "rpcs_per_second": rpcs_window as f64 / elapsed,
        "assertions_per_second": assertions_window as f64 / elapsed,
        "latency": quantiles(&latency),
        "rejected_latency": quantiles(&rejected),
        "attempts": *stats.attempts.lock().await,
        "errors": *stats.errors.lock().await,
        "decisions": *stats.reasons.lock().await,
        "mismatches": stats.mismatches.load(Ordering::Relaxed),
        "server_cpu_seconds": server_cpu,
        "generator_cpu_seconds": self_cpu,
        "server_cpu_per_assertion_us": server_cpu.map(|c| c * 1e6 / assertions_window.max(1) as f64),
        "cache_hit_ratio": hit_ratio,
        "server_rss_bytes": server_rss,
        "server_rss_start_bytes": rss_start,
        "server_rss_max_bytes": rss_max,
        "population": args.population,
        "zipf": args.population.map(|_| args.zipf),
    }))
}
