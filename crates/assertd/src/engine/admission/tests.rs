//! Tests of the parent module.

use super::*;

#[test]
fn request_bytes_are_held_until_the_call_ends() {
    let limits = Limits { max_request_bytes_in_flight: 1000, ..Limits::default() };
    let a = Admission::new(&limits, 1);
    let first = a.bytes_held();
    assert!(first.take(600) && first.take(300));
    let second = a.bytes_held();
    assert!(!second.take(200), "900 + 200 is over 1000");
    assert!(second.take(100));
    assert_eq!(a.request_bytes(), 1000);
    drop(first);
    assert_eq!(a.request_bytes(), 100);
    assert!(second.take(900));
    drop(second);
    assert_eq!(a.request_bytes(), 0);
}

fn admission(target_ms: u64, cap: usize, threads: usize) -> Admission {
    let limits = Limits { max_queue_wait_ms: target_ms, max_queued_assertions: cap, ..Limits::default() };
    Admission::new(&limits, threads)
}

#[test]
fn admits_by_estimated_wait_not_by_count() {
    let a = admission(50, 0, 1);
    // Measured: 50 us per assertion. 50 ms = 1000 assertions.
    for _ in 0..64 {
        a.record_cost(64, Duration::from_micros(50 * 64));
    }
    let held: Vec<_> = (0..15).map(|_| a.admit(64, None).unwrap()).collect();
    // 15 x 64 = 960 queued (48 ms): one more batch of 64 would finish
    // at 51.2 ms; come back once 1.2 ms have drained (then it fits).
    let refused = a.admit(64, None).unwrap_err();
    let ms = refused.retry_after.as_secs_f64() * 1e3;
    assert!((1.1..1.3).contains(&ms), "{refused:?}");
    // Many small batches fit where a big one does not.
    assert!(a.admit(8, None).is_ok());
    drop(held);
    assert_eq!(a.queue_wait(), Duration::ZERO);
    // An idle pool takes a batch bigger than the whole target.
    let big = a.admit(5000, None).unwrap();
    assert!(a.admit(1, None).is_err());
    assert!(a.work_exhausted().is_some());
    drop(big);
    assert!(a.work_exhausted().is_none());
}

#[test]
fn the_headers_refusal_assumes_the_smallest_batch_offered_lately() {
    let a = admission(50, 0, 1);
    for _ in 0..64 {
        a.record_cost(64, Duration::from_micros(50 * 64));
    }
    // Nothing offered yet: a call is assumed to hold one assertion.
    let held: Vec<_> = (0..15).map(|_| a.admit(64, None).unwrap()).collect();
    // 960 queued (48 ms): a batch of 64 would not fit, but calls of 64
    // are all that was offered, so the headers can tell.
    assert!(a.admit(64, None).is_err());
    let early = a.work_exhausted().expect("refused from the headers");
    assert!((1.1..1.3).contains(&(early.retry_after.as_secs_f64() * 1e3)), "{early:?}");
    // Once a caller offers single assertions, the headers let calls
    // through to the exact check, which admits one that fits.
    let one = a.admit(1, None).unwrap();
    assert!(a.work_exhausted().is_none());
    drop((held, one));
    assert!(a.work_exhausted().is_none(), "an idle pool refuses nothing");
}

#[test]
fn the_call_deadline_and_the_cap_bound_it_too() {
    let a = admission(50, 100, 2);
    for _ in 0..64 {
        a.record_cost(1, Duration::from_micros(100));
    }
    let _first = a.admit(10, None).unwrap();
    // 2 threads: 74 more = 84 x 100 us / 2 = 4.2 ms, under the target,
    // over a 2 ms deadline.
    assert!(a.admit(74, Some(Duration::from_millis(2))).is_err());
    let _second = a.admit(74, Some(Duration::from_millis(10))).unwrap();
    // The cap of 100 queued assertions.
    assert!(a.admit(20, None).is_err());
    assert!(a.admit(16, None).is_ok());
}

#[test]
fn cost_follows_the_measurements() {
    let a = admission(50, 0, 1);
    assert_eq!(a.time_for(10), INITIAL_COST * 10);
    for _ in 0..200 {
        a.record_cost(10, Duration::from_micros(300));
    }
    let per = a.time_for(1);
    assert!(per > Duration::from_micros(29) && per < Duration::from_micros(31), "{per:?}");
    // One preempted verification (wall-clock 100x its cost) moves the
    // estimate by at most 3/8, not 12x.
    a.record_cost(1, Duration::from_micros(3000));
    let after = a.time_for(1);
    assert!(after < per * 3 / 2, "{per:?} -> {after:?}");
    // A real change of mix (RSA-4096: ~30x) is followed within tens of
    // batches.
    for _ in 0..40 {
        a.record_cost(1, Duration::from_micros(900));
    }
    assert!(a.time_for(1) > Duration::from_micros(800), "{:?}", a.time_for(1));
}

#[tokio::test]
async fn a_stream_message_waits_for_room() {
    let a = Arc::new(admission(1, 0, 1));
    let first = a.admit(100, None).unwrap();
    let waiter = tokio::spawn({
        let a = a.clone();
        async move { drop(a.admit_stream(100).await) }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!waiter.is_finished());
    drop(first);
    tokio::time::timeout(Duration::from_secs(1), waiter).await.unwrap().unwrap();
}

#[tokio::test]
async fn waiting_stream_messages_are_admitted_in_arrival_order() {
    let a = Arc::new(admission(1, 0, 1));
    for _ in 0..8 {
        a.record_cost(1, Duration::from_millis(1));
    }
    let first = a.admit(10, None).unwrap();
    let (tx, mut order) = tokio::sync::mpsc::unbounded_channel();
    for i in 0..5 {
        let (a, tx) = (a.clone(), tx.clone());
        tokio::spawn(async move {
            let admitted = a.admit_stream(10).await;
            tx.send(i).unwrap();
            tokio::time::sleep(Duration::from_millis(2)).await;
            drop(admitted);
        });
        // Each one queued before the next arrives.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(first);
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(tokio::time::timeout(Duration::from_secs(2), order.recv()).await.unwrap().unwrap());
    }
    assert_eq!(got, vec![0, 1, 2, 3, 4]);
}

/// A message arriving as room frees up queues behind the one already
/// waiting, instead of taking the room first (which, repeated, starves
/// the waiting stream).
#[tokio::test]
async fn a_newcomer_does_not_overtake_a_waiting_stream() {
    let a = Arc::new(admission(1, 0, 1));
    for _ in 0..8 {
        a.record_cost(1, Duration::from_millis(1));
    }
    let first = a.admit(10, None).unwrap();
    let waiting = tokio::spawn({
        let a = a.clone();
        // Holds its room until the test ends.
        async move { a.admit_stream(10).await }
    });
    tokio::time::sleep(Duration::from_millis(5)).await;
    drop(first);
    // The waiter is woken but has not run yet: the newcomer must not get in.
    let newcomer = tokio::time::timeout(Duration::from_millis(1), a.admit_stream(10)).await;
    assert!(newcomer.is_err(), "the newcomer overtook the waiting message");
    let _held = tokio::time::timeout(Duration::from_secs(1), waiting).await.unwrap().unwrap();
}

/// A retried call waits its turn instead of being refused again, and a
/// first attempt arriving meanwhile counts it as ahead (refused, not let
/// in before it).
#[tokio::test]
async fn a_retry_waits_its_turn_and_first_attempts_do_not_overtake_it() {
    let a = Arc::new(admission(50, 0, 1));
    for _ in 0..64 {
        a.record_cost(64, Duration::from_micros(50 * 64));
    }
    // 960 queued (48 ms): a batch of 64 does not fit the 50 ms target.
    let held: Vec<_> = (0..15).map(|_| a.admit(64, None).unwrap()).collect();
    assert!(a.admit(64, None).is_err());
    let retry = tokio::spawn({
        let a = a.clone();
        async move { a.admit_retry(64, None).await.unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(!retry.is_finished(), "the retry waits for room");
    // 48 ms queued and 3.2 ms in line: a first attempt of 8 (0.4 ms) would
    // have fit without the line; with it, it is refused.
    assert!(a.queue_wait() > Duration::from_millis(51), "{:?}", a.queue_wait());
    assert!(a.admit(8, None).is_err(), "a first attempt overtook the line");
    drop(held);
    let admitted = tokio::time::timeout(Duration::from_secs(1), retry).await.unwrap().unwrap();
    assert_eq!(a.queue_wait(), a.time_for(64));
    drop(admitted);
    assert_eq!(a.queue_wait(), Duration::ZERO);
}

#[tokio::test]
async fn a_retry_is_refused_only_past_its_deadline_and_leaves_the_line_when_dropped() {
    let a = Arc::new(admission(50, 0, 1));
    for _ in 0..64 {
        a.record_cost(64, Duration::from_micros(50 * 64));
    }
    let held: Vec<_> = (0..15).map(|_| a.admit(64, None).unwrap()).collect();
    // 48 + 3.2 ms of wait: past a 20 ms deadline, refused with when to come back.
    let refused = a.admit_retry(64, Some(Duration::from_millis(20))).await.unwrap_err();
    let ms = refused.retry_after.as_secs_f64() * 1e3;
    assert!((30.0..32.0).contains(&ms), "{refused:?}");
    // Within a longer deadline it waits; given up, it is out of the line.
    let waiting = tokio::time::timeout(Duration::from_millis(10), a.admit_retry(64, Some(Duration::from_secs(1)))).await;
    assert!(waiting.is_err(), "admitted without room");
    assert_eq!(a.queue_wait(), a.time_for(960));
    drop(held);
    assert_eq!(a.queue_wait(), Duration::ZERO);
}

#[test]
fn only_a_count_of_one_or_more_is_a_retry() {
    for (v, retry) in [
        (Some(&b"1"[..]), true),
        (Some(b"4"), true),
        (Some(b"0"), false),
        (Some(b"-1"), false),
        (Some(b"x"), false),
        (Some(b""), false),
        (None, false),
    ] {
        assert_eq!(is_retry(v), retry, "{v:?}");
    }
}
