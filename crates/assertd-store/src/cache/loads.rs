//! The keys the cache is loading, so a change that lands during a load
//! drops what the load inserts.

use super::Key;

/// The keys being loaded. A change to one credential marks its key here
/// before it removes the cached entry, and the load drops what it inserted
/// when its key was marked: without this a revocation that raced a miss
/// stayed cached for the whole TTL. Per key, so a change to one credential
/// does not throw away what concurrent loads read for others.
#[derive(Default)]
pub(super) struct Loads(parking_lot::Mutex<foldhash::HashMap<Key, Load>>);

/// One key's loads in flight.
struct Load {
    /// Callers waiting on it (concurrent misses share one load).
    callers: u32,
    /// The credential changed while they waited.
    changed: bool,
}

impl Loads {
    /// Registers a caller about to load `key`, until the guard drops.
    pub(super) fn start<'a>(&'a self, key: &'a Key) -> LoadGuard<'a> {
        self.0.lock().entry(key.clone()).or_insert(Load { callers: 0, changed: false }).callers += 1;
        LoadGuard { loads: self, key }
    }

    /// Marks `key`'s loads in flight as stale.
    pub(super) fn changed(&self, key: &Key) {
        if let Some(load) = self.0.lock().get_mut(key) {
            load.changed = true;
        }
    }
}

/// A caller's registration in [`Loads`]; dropping it (also when the
/// caller's future is dropped mid-load) deregisters.
pub(super) struct LoadGuard<'a> {
    loads: &'a Loads,
    key: &'a Key,
}

impl LoadGuard<'_> {
    /// Whether the credential changed since the load started.
    pub(super) fn changed(&self) -> bool {
        self.loads.0.lock().get(self.key).is_some_and(|l| l.changed)
    }
}

impl Drop for LoadGuard<'_> {
    fn drop(&mut self) {
        let mut loads = self.loads.0.lock();
        if let Some(load) = loads.get_mut(self.key) {
            load.callers -= 1;
            if load.callers == 0 {
                loads.remove(self.key);
            }
        }
    }
}
