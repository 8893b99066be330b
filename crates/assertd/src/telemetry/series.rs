//! Cached series handles: the per-assertion path registers each series
//! once.

/// Handles of one metric's series by the value of its one label (`""` for
/// a metric without labels). The per-assertion path registers each series
/// once: a `counter!` call hashes and copies its key on every call, which
/// profiling showed as an allocation per assertion. [`super::install`] clears
/// them, so no handle outlives the recorder it came from.
pub(super) struct Series<M, K = &'static str> {
    handles: parking_lot::RwLock<Vec<(K, M)>>,
}

impl<M: Clone, K: PartialEq> Series<M, K> {
    pub(super) const fn new() -> Self {
        Self { handles: parking_lot::const_rwlock(Vec::new()) }
    }

    /// Runs `f` on the series for `value`, registering it on first use.
    pub(super) fn with(&self, value: K, register: impl FnOnce() -> M, f: impl FnOnce(&M)) {
        if let Some((_, m)) = self.handles.read().iter().find(|(v, _)| *v == value) {
            return f(m);
        }
        let mut handles = self.handles.write();
        if let Some((_, m)) = handles.iter().find(|(v, _)| *v == value) {
            return f(m);
        }
        let m = register();
        f(&m);
        handles.push((value, m));
    }

    /// [`Self::with`] for keys compared without being built (owned labels
    /// are made only when the series is registered).
    pub(super) fn with_matching(
        &self,
        matches: impl Fn(&K) -> bool,
        key: impl FnOnce() -> K,
        register: impl FnOnce() -> M,
        f: impl FnOnce(&M),
    ) {
        if let Some((_, m)) = self.handles.read().iter().find(|(v, _)| matches(v)) {
            return f(m);
        }
        let mut handles = self.handles.write();
        if let Some((_, m)) = handles.iter().find(|(v, _)| matches(v)) {
            return f(m);
        }
        let m = register();
        f(&m);
        handles.push((key(), m));
    }

    pub(super) fn clear(&self) {
        self.handles.write().clear();
    }
}
