//! The key cache: prepared public keys and the immutable registration facts
//! of hot credentials, in a bounded moka cache in front of the store.
//!
//! * A batch's misses are one store read ([`KeyCache::get_many`]); a lone
//!   miss shares its read with concurrent misses of the same credential.
//! * Unknown credential IDs are cached negatively for a short time, so a
//!   flood of random IDs cannot hammer the store.
//! * Store errors are never cached.
//! * [`KeyCache::invalidate`] drops an entry (positive or negative) at once:
//!   call it on put and revoke. It wins over a load in flight: the load
//!   drops what it inserted when an invalidation ran meanwhile.

use crate::record::StoredCredential;
use crate::store::CredentialStore;
use crate::types::StoreError;
use assertd_verify::{KeyError, PublicKey};
use moka::future::Cache;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

mod loads;
use loads::Loads;

/// Key cache settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// Most credentials held, found and not-found entries together (not-found
    /// ones take at most an eighth).
    pub max_entries: u64,
    /// How long a found credential stays cached.
    pub ttl: Duration,
    /// How long an unknown credential ID stays cached as unknown.
    pub negative_ttl: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self { max_entries: 100_000, ttl: Duration::from_secs(300), negative_ttl: Duration::from_secs(5) }
    }
}

/// A credential as the verifier needs it: the key parsed once, and the facts
/// that do not change between assertions. The signature counter lives in the
/// store; the entry only knows whether the credential is counter-less.
#[derive(Debug)]
pub struct CachedCredential {
    /// The parsed key, or why the stored key cannot be used.
    pub key: Result<PublicKey, KeyError>,
    /// The user handle (at most 64 bytes, held inline).
    pub user_handle: smallvec::SmallVec<[u8; 64]>,
    /// BE at registration.
    pub backup_eligible: bool,
    /// BS as last recorded.
    pub backup_state: bool,
    /// WebAuthn L3 `uvInitialized`.
    pub uv_initialized: bool,
    /// The AAGUID.
    pub aaguid: [u8; 16],
    /// Attestation verified at registration.
    pub attested: bool,
    /// The attestation's root vouched for the AAGUID.
    pub aaguid_vouched: bool,
    /// Revoked.
    pub revoked: bool,
    /// The stored sign count when the entry was loaded.
    pub sign_count: u32,
    /// When the credential was registered (Unix ms).
    pub created_at_ms: i64,
    /// Set once this replica has seen the count leave 0.
    counted: AtomicBool,
    /// When this replica last claimed a `last_used_at` write for the
    /// credential (Unix ms; 0: never). Kept in the entry, so the hot path
    /// needs no map of its own.
    touched_ms: AtomicI64,
}

impl CachedCredential {
    /// Whether the stored count is still 0 as far as this replica knows
    /// (counter-less authenticators, e.g. synced passkeys). Other replicas'
    /// first nonzero count reaches this one through the store's change feed
    /// (the entry is dropped); this replica's own through [`Self::mark_counted`].
    pub fn is_counterless(&self) -> bool {
        self.sign_count == 0 && !self.counted.load(Ordering::Acquire)
    }

    /// Records that the stored count has left 0.
    pub fn mark_counted(&self) {
        self.counted.store(true, Ordering::Release);
    }

    /// Claims the `last_used_at` write for this use: true when this replica
    /// has not claimed one for the credential within `window_ms` of
    /// `now_ms` (since the entry was loaded), so at most one write per
    /// window per cached entry, whatever the concurrency.
    pub fn claim_touch(&self, now_ms: i64, window_ms: i64) -> bool {
        let last = self.touched_ms.load(Ordering::Relaxed);
        if last != 0 && now_ms.saturating_sub(last) < window_ms {
            return false;
        }
        self.touched_ms.compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed).is_ok()
    }
}

impl From<&StoredCredential> for CachedCredential {
    fn from(r: &StoredCredential) -> Self {
        Self {
            key: PublicKey::from_cose(&r.public_key_cose),
            user_handle: smallvec::SmallVec::from_slice(&r.user_handle),
            backup_eligible: r.backup_eligible,
            backup_state: r.backup_state,
            uv_initialized: r.uv_initialized,
            aaguid: r.aaguid16(),
            attested: r.attested,
            aaguid_vouched: r.aaguid_vouched,
            revoked: r.revoked,
            sign_count: r.sign_count,
            created_at_ms: r.created_at_ms,
            counted: AtomicBool::new(false),
            touched_ms: AtomicI64::new(0),
        }
    }
}

/// The result of a cache lookup.
#[derive(Debug, Clone)]
pub enum Lookup {
    /// The credential exists (it may be revoked).
    Found(Arc<CachedCredential>),
    /// No such credential.
    NotFound,
    /// The store could not answer.
    Unavailable(String),
}

/// `rp_id ‖ 0xFF ‖ credential_id` (0xFF never occurs in UTF-8, so the split
/// is unambiguous), held inline in the cache's bucket up to 64 bytes, which
/// covers common RP IDs with 16–32-byte credential IDs: a lookup compares
/// keys without chasing another pointer.
type Key = smallvec::SmallVec<[u8; 64]>;

/// Why a load did not produce an entry.
#[derive(Debug)]
enum LoadError {
    NotFound,
    Store(StoreError),
}

/// The key cache: found credentials and unknown IDs in two moka caches, each
/// with one fixed time to live (a per-entry expiry policy would cost every
/// hit another pointer chase).
#[derive(Clone)]
pub struct KeyCache {
    cache: Cache<Key, Arc<CachedCredential>>,
    /// Unknown IDs; `None` when `max_entries` leaves them no room.
    unknown: Option<Cache<Key, ()>>,
    store: Arc<dyn CredentialStore>,
    evictions: Arc<AtomicU64>,
    /// Credentials read from the store (a batch's misses are one read of
    /// them all; concurrent lone misses of one key share a read).
    reads: Arc<AtomicU64>,
    /// Bumped when everything is dropped. A load that started before a
    /// bump drops what it inserted: moka's loader inserts its value even
    /// when `invalidate` ran during the load.
    epoch: Arc<AtomicU64>,
    /// The keys being loaded, each marked when its credential changed
    /// meanwhile (see [`Loads`]).
    loads: Arc<Loads>,
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCache").field("entries", &self.entry_count()).finish_non_exhaustive()
    }
}

impl KeyCache {
    /// A cache in front of `store`.
    pub fn new(store: Arc<dyn CredentialStore>, config: CacheConfig) -> Self {
        let evictions = Arc::new(AtomicU64::new(0));
        // Unknown IDs get at most an eighth of the room.
        let unknown_room = config.max_entries / 8;
        let cache = Cache::builder()
            .max_capacity(config.max_entries - unknown_room)
            .time_to_live(config.ttl)
            .eviction_listener(Self::count_evictions(evictions.clone()))
            .build();
        let unknown = (unknown_room > 0).then(|| {
            Cache::builder()
                .max_capacity(unknown_room)
                .time_to_live(config.negative_ttl)
                .eviction_listener(Self::count_evictions(evictions.clone()))
                .build()
        });
        Self { cache, unknown, store, evictions, reads: Arc::default(), epoch: Arc::default(), loads: Arc::default() }
    }

    /// Counts evictions for size into `counter`.
    fn count_evictions<V>(counter: Arc<AtomicU64>) -> impl Fn(Arc<Key>, V, moka::notification::RemovalCause) + Send + Sync + 'static {
        move |_, _, cause| {
            if cause == moka::notification::RemovalCause::Size {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The store behind the cache.
    pub fn store(&self) -> &Arc<dyn CredentialStore> {
        &self.store
    }

    /// Looks a credential up; the bool is true on a cache hit.
    pub async fn get(&self, rp_id: &str, credential_id: &[u8]) -> (Lookup, bool) {
        let key = cache_key(rp_id, credential_id);
        if let Some(c) = self.cache.get(key.as_slice()).await {
            return (Lookup::Found(c), true);
        }
        if let Some(unknown) = &self.unknown
            && unknown.contains_key(key.as_slice())
        {
            return (Lookup::NotFound, true);
        }
        let (store, reads) = (self.store.clone(), self.reads.clone());
        let (rp, id) = (rp_id.to_owned(), credential_id.to_vec());
        let epoch = self.epoch.load(Ordering::Acquire);
        let load = self.loads.start(&key);
        // Concurrent misses of one key share this load, its outcome included.
        let loaded = self
            .cache
            .try_get_with(key.clone(), async move {
                reads.fetch_add(1, Ordering::Relaxed);
                match store.get(&rp, &id).await {
                    Ok(Some(r)) => Ok(Arc::new(CachedCredential::from(&r))),
                    Ok(None) => Err(LoadError::NotFound),
                    Err(e) => Err(LoadError::Store(e)),
                }
            })
            .await;
        let lookup = match loaded {
            Ok(c) => Lookup::Found(c),
            Err(e) => match &*e {
                LoadError::NotFound => {
                    if let Some(unknown) = &self.unknown {
                        unknown.insert(key.clone(), ()).await;
                    }
                    Lookup::NotFound
                }
                LoadError::Store(e) => return (Lookup::Unavailable(e.to_string()), false),
            },
        };
        // The credential changed (or everything was dropped) while this
        // load ran: what it inserted may predate the change. This caller's
        // request raced the change and gets what was read; the next one
        // reads again.
        if load.changed() || self.epoch.load(Ordering::Acquire) != epoch {
            self.remove(&key).await;
        }
        drop(load);
        (lookup, false)
    }

    /// Looks several distinct credentials up (a batch's keys): the hits
    /// from the cache, every miss in one store read ([`Credentials::get_many`]),
    /// so a batch of first sign-ins costs one trip to the store rather than
    /// one each. A lone miss goes through [`Self::get`], which shares its
    /// read with concurrent misses of the same key. The bool is true on a
    /// hit.
    ///
    /// [`Credentials::get_many`]: crate::store::Credentials::get_many
    pub async fn get_many(&self, keys: &[(&str, &[u8])]) -> Vec<(Lookup, bool)> {
        let mut out: Vec<Option<(Lookup, bool)>> = Vec::with_capacity(keys.len());
        let mut missed: Vec<usize> = Vec::new();
        for (i, (rp_id, credential_id)) in keys.iter().enumerate() {
            let key = cache_key(rp_id, credential_id);
            if let Some(c) = self.cache.get(key.as_slice()).await {
                out.push(Some((Lookup::Found(c), true)));
            } else if self.unknown.as_ref().is_some_and(|u| u.contains_key(key.as_slice())) {
                out.push(Some((Lookup::NotFound, true)));
            } else {
                out.push(None);
                missed.push(i);
            }
        }
        if let [i] = missed[..] {
            out[i] = Some(self.get(keys[i].0, keys[i].1).await);
        } else if !missed.is_empty() {
            let asked: Vec<(&str, &[u8])> = missed.iter().map(|&i| keys[i]).collect();
            for (i, lookup) in missed.iter().zip(self.load_many(&asked).await) {
                out[*i] = Some((lookup, false));
            }
        }
        out.into_iter().map(|l| l.unwrap_or((Lookup::Unavailable("not looked up".into()), false))).collect()
    }

    /// Reads `keys` (all misses) in one store read and caches what it found
    /// and what it did not, as [`Self::get`] does for one.
    async fn load_many(&self, keys: &[(&str, &[u8])]) -> Vec<Lookup> {
        let cache_keys: Vec<Key> = keys.iter().map(|(rp, id)| cache_key(rp, id)).collect();
        let epoch = self.epoch.load(Ordering::Acquire);
        let loads: Vec<_> = cache_keys.iter().map(|k| self.loads.start(k)).collect();
        self.reads.fetch_add(keys.len() as u64, Ordering::Relaxed);
        let read = match self.store.get_many(keys).await {
            Ok(read) if read.len() == keys.len() => read,
            Ok(read) => {
                let e = format!("the store answered {} of {} credentials", read.len(), keys.len());
                return keys.iter().map(|_| Lookup::Unavailable(e.clone())).collect();
            }
            Err(e) => return keys.iter().map(|_| Lookup::Unavailable(e.to_string())).collect(),
        };
        let mut out = Vec::with_capacity(keys.len());
        for ((key, load), record) in cache_keys.iter().zip(&loads).zip(read) {
            let lookup = match record {
                Some(r) => {
                    let c = Arc::new(CachedCredential::from(&r));
                    self.cache.insert(key.clone(), c.clone()).await;
                    Lookup::Found(c)
                }
                None => {
                    if let Some(unknown) = &self.unknown {
                        unknown.insert(key.clone(), ()).await;
                    }
                    Lookup::NotFound
                }
            };
            // As in `get`: a change that landed during the read drops what
            // it inserted; this caller gets what was read.
            if load.changed() || self.epoch.load(Ordering::Acquire) != epoch {
                self.remove(key).await;
            }
            out.push(lookup);
        }
        drop(loads);
        out
    }

    async fn remove(&self, key: &Key) {
        self.cache.invalidate(key.as_slice()).await;
        if let Some(unknown) = &self.unknown {
            unknown.invalidate(key.as_slice()).await;
        }
    }

    /// Drops a credential's entry, found or not-found, at once.
    pub async fn invalidate(&self, rp_id: &str, credential_id: &[u8]) {
        let key = cache_key(rp_id, credential_id);
        self.loads.changed(&key);
        self.remove(&key).await;
    }

    /// Marks a cached credential as counted (its stored count left 0
    /// elsewhere); nothing to do when it is not cached.
    pub async fn mark_counted(&self, rp_id: &str, credential_id: &[u8]) {
        // A load in flight read the count before it left 0: drop its entry.
        let key = cache_key(rp_id, credential_id);
        self.loads.changed(&key);
        if let Some(c) = self.cache.get(key.as_slice()).await {
            c.mark_counted();
        }
    }

    /// Drops every entry (the change feed may have missed changes).
    pub fn invalidate_all(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.cache.invalidate_all();
        if let Some(unknown) = &self.unknown {
            unknown.invalidate_all();
        }
    }

    /// Runs the cache's pending maintenance (evictions, expirations), so the
    /// counts below are current.
    pub async fn sync(&self) {
        self.cache.run_pending_tasks().await;
        if let Some(unknown) = &self.unknown {
            unknown.run_pending_tasks().await;
        }
    }

    /// Entries evicted to stay within `max_entries`, since start.
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    /// Credentials read from the store, since start.
    pub fn store_reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// Entries currently cached (approximate).
    pub fn entry_count(&self) -> u64 {
        self.cache.entry_count() + self.unknown.as_ref().map_or(0, Cache::entry_count)
    }
}

/// The cache key of a credential; built on the stack for lookups of common
/// sizes, so a hit allocates nothing.
fn cache_key(rp_id: &str, credential_id: &[u8]) -> Key {
    let mut k = Key::with_capacity(rp_id.len() + 1 + credential_id.len());
    k.extend_from_slice(rp_id.as_bytes());
    k.push(0xFF);
    k.extend_from_slice(credential_id);
    k
}
