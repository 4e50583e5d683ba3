//! Waiting for a condition with a deadline instead of sleeping blindly.

use std::time::{Duration, Instant};

/// How long to wait between two polls.
pub const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Calls `f` every ~10 ms until it returns `Some`, and returns that value.
///
/// # Panics
/// With "timed out after {timeout:?} waiting for {what}" if `f` has not returned `Some` within
/// `timeout` (`f` is always called at least once, and once more at the deadline).
pub fn poll_until<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = f() {
            return value;
        }
        let now = Instant::now();
        if now >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(POLL_INTERVAL.min(deadline - now));
    }
}

/// The async version of [`poll_until`], for tokio: awaits `f()` every ~10 ms until it yields
/// `Some`, and returns that value.
///
/// # Panics
/// With "timed out after {timeout:?} waiting for {what}" if `f` has not yielded `Some` within
/// `timeout`.
pub async fn poll_until_async<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = f().await {
            return value;
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(POLL_INTERVAL.min(deadline - now)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_the_first_some() {
        let mut calls = 0;
        let value = poll_until(Duration::from_secs(5), "three calls", || {
            calls += 1;
            (calls == 3).then_some(calls)
        });
        assert_eq!(value, 3);
    }

    #[test]
    #[should_panic(expected = "waiting for nothing")]
    fn panics_at_the_deadline() {
        poll_until(Duration::from_millis(30), "nothing", || None::<()>);
    }

    #[tokio::test]
    async fn async_returns_the_first_some() {
        let mut calls = 0;
        let value = poll_until_async(Duration::from_secs(5), "three calls", || {
            calls += 1;
            let done = calls == 3;
            async move { done.then_some(7) }
        })
        .await;
        assert_eq!(value, 7);
    }

    #[tokio::test]
    #[should_panic(expected = "timed out after")]
    async fn async_panics_at_the_deadline() {
        poll_until_async(Duration::from_millis(30), "nothing", || async {
            None::<()>
        })
        .await;
    }
}
