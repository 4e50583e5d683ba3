//! The objects, the resourceVersion counter, and the changes that watches replay and follow.
//!
//! One counter orders every write, as etcd's revision does: an object's resourceVersion is the
//! revision of its last write, and a list's is the revision it was taken at. The last
//! [`HISTORY`] changes are kept so that a watch from a list's resourceVersion misses nothing
//! written between the list and the watch; older starting points get `410 Expired`, as from a
//! compacted etcd.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::status::ApiError;
use super::time;

/// How many changes are kept for watches that start from a past resourceVersion.
const HISTORY: usize = 10_000;

/// How many changes the live fan-out holds for a watcher; one further behind catches up from
/// the history.
const FAN_OUT: usize = 1024;

/// What a change did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ChangeType {
    Added,
    Modified,
    Deleted,
}

/// One write, as watches see it.
#[derive(Debug)]
pub(super) struct Change {
    pub(super) kind: ChangeType,
    pub(super) resource: String,
    /// The revision of the write.
    pub(super) revision: u64,
    /// The object after the write; for a deletion, its last state carrying the deletion's
    /// resourceVersion (as etcd watches report it).
    pub(super) object: Value,
    /// The object before the write, for watches whose selector it matched.
    pub(super) previous: Option<Value>,
}

/// Why a write did not happen.
#[derive(Debug)]
pub(super) enum StoreError {
    NotFound,
    AlreadyExists,
    /// The caller's check on the current object refused the write.
    Rejected(ApiError),
}

/// What a new watch starts from.
pub(super) struct Subscription {
    /// The current objects of the resource, when the watch did not give a resourceVersion.
    pub(super) current: Vec<Value>,
    /// The remembered changes after the watch's resourceVersion.
    pub(super) replay: Vec<Arc<Change>>,
    /// The revision at subscription: live changes up to it are already in `current`/`replay`.
    pub(super) revision: u64,
    pub(super) live: broadcast::Receiver<Arc<Change>>,
}

type Key = (String, String, String);

struct Inner {
    revision: u64,
    /// By (resource, namespace or "", name).
    objects: BTreeMap<Key, Value>,
    history: VecDeque<Arc<Change>>,
    /// The revision of the newest change no longer in `history`.
    compacted: u64,
}

/// The object store.
pub(super) struct Store {
    inner: Mutex<Inner>,
    changes: broadcast::Sender<Arc<Change>>,
}

fn key(resource: &str, namespace: Option<&str>, name: &str) -> Key {
    (
        resource.to_owned(),
        namespace.unwrap_or_default().to_owned(),
        name.to_owned(),
    )
}

fn key_of(resource: &str, object: &Value) -> Option<Key> {
    let metadata = &object["metadata"];
    let name = metadata["name"].as_str().filter(|n| !n.is_empty())?;
    Some(key(resource, metadata["namespace"].as_str(), name))
}

/// A random RFC 4122 version 4 UUID, as the API server gives every object.
pub(super) fn uuid() -> String {
    let mut bytes = [0u8; 16];
    // The system RNG failing is not something a test server can recover from meaningfully; an
    // all-zero UID would still be a valid string.
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn set_metadata(object: &mut Value, field: &str, value: Value) {
    if !object["metadata"].is_object() {
        object["metadata"] = json!({});
    }
    object["metadata"][field] = value;
}

impl Store {
    pub(super) fn new() -> Store {
        Store {
            inner: Mutex::new(Inner {
                revision: 0,
                objects: BTreeMap::new(),
                history: VecDeque::new(),
                compacted: 0,
            }),
            changes: broadcast::channel(FAN_OUT).0,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn get(&self, resource: &str, namespace: Option<&str>, name: &str) -> Option<Value> {
        self.lock()
            .objects
            .get(&key(resource, namespace, name))
            .cloned()
    }

    /// The objects of `resource` (in `namespace`, or everywhere), in key order, with the
    /// revision the list was taken at.
    pub(super) fn list(&self, resource: &str, namespace: Option<&str>) -> (Vec<Value>, u64) {
        let inner = self.lock();
        let objects = inner
            .objects
            .iter()
            .filter(|((r, ns, _), _)| r == resource && namespace.is_none_or(|want| ns == want))
            .map(|(_, object)| object.clone())
            .collect();
        (objects, inner.revision)
    }

    /// Creates `object` (its metadata.namespace already set for namespaced resources) with a
    /// new uid and creationTimestamp. A dry run answers the same without a resourceVersion and
    /// stores nothing.
    pub(super) fn create(
        &self,
        resource: &str,
        mut object: Value,
        dry_run: bool,
    ) -> Result<Value, StoreError> {
        let mut inner = self.lock();
        let key = key_of(resource, &object).ok_or_else(|| {
            StoreError::Rejected(ApiError::bad_request("the object has no metadata.name"))
        })?;
        if inner.objects.contains_key(&key) {
            return Err(StoreError::AlreadyExists);
        }
        set_metadata(&mut object, "uid", json!(uuid()));
        set_metadata(&mut object, "creationTimestamp", json!(time::now_rfc3339()));
        if dry_run {
            return Ok(object);
        }
        Ok(self.commit(&mut inner, resource, key, object, None))
    }

    /// Replaces the object with what `change` makes of it, keeping its uid and
    /// creationTimestamp. A dry run answers the result and stores nothing.
    pub(super) fn update(
        &self,
        resource: &str,
        namespace: Option<&str>,
        name: &str,
        dry_run: bool,
        change: impl FnOnce(&Value) -> Result<Value, ApiError>,
    ) -> Result<Value, StoreError> {
        let mut inner = self.lock();
        let key = key(resource, namespace, name);
        let current = inner.objects.get(&key).ok_or(StoreError::NotFound)?;
        let mut object = change(current).map_err(StoreError::Rejected)?;
        // Identity and placement come from the stored object, whatever the request said.
        for field in ["name", "namespace", "uid", "creationTimestamp"] {
            match current["metadata"].get(field) {
                Some(value) => set_metadata(&mut object, field, value.clone()),
                None => {
                    if let Some(metadata) = object["metadata"].as_object_mut() {
                        metadata.remove(field);
                    }
                }
            }
        }
        if dry_run {
            let revision = current["metadata"]["resourceVersion"].clone();
            set_metadata(&mut object, "resourceVersion", revision);
            return Ok(object);
        }
        let previous = current.clone();
        Ok(self.commit(&mut inner, resource, key, object, Some(previous)))
    }

    /// Deletes the object and returns its last state (with the deletion's resourceVersion,
    /// unless it is a dry run).
    pub(super) fn delete(
        &self,
        resource: &str,
        namespace: Option<&str>,
        name: &str,
        dry_run: bool,
    ) -> Option<Value> {
        let mut inner = self.lock();
        let key = key(resource, namespace, name);
        if dry_run {
            return inner.objects.get(&key).cloned();
        }
        let mut object = inner.objects.remove(&key)?;
        inner.revision += 1;
        let revision = inner.revision;
        set_metadata(&mut object, "resourceVersion", json!(revision.to_string()));
        self.record(
            &mut inner,
            Change {
                kind: ChangeType::Deleted,
                resource: resource.to_owned(),
                revision,
                object: object.clone(),
                previous: None,
            },
        );
        Some(object)
    }

    /// Inserts or replaces `object` as given, keeping (in this order) the uid and
    /// creationTimestamp it carries, those of the object it replaces, or new ones.
    pub(super) fn put(&self, resource: &str, mut object: Value) -> Result<Value, String> {
        let key = key_of(resource, &object).ok_or("the object has no metadata.name")?;
        let mut inner = self.lock();
        let previous = inner.objects.get(&key).cloned();
        for (field, fresh) in [
            ("uid", uuid as fn() -> String),
            ("creationTimestamp", time::now_rfc3339),
        ] {
            if object["metadata"][field].as_str().is_none_or(str::is_empty) {
                let value = previous
                    .as_ref()
                    .and_then(|p| p["metadata"].get(field).cloned())
                    .unwrap_or_else(|| json!(fresh()));
                set_metadata(&mut object, field, value);
            }
        }
        Ok(self.commit(&mut inner, resource, key, object, previous))
    }

    /// Stores `object` at a new revision and tells the watches.
    fn commit(
        &self,
        inner: &mut Inner,
        resource: &str,
        key: Key,
        mut object: Value,
        previous: Option<Value>,
    ) -> Value {
        inner.revision += 1;
        let revision = inner.revision;
        set_metadata(&mut object, "resourceVersion", json!(revision.to_string()));
        inner.objects.insert(key, object.clone());
        let kind = if previous.is_some() {
            ChangeType::Modified
        } else {
            ChangeType::Added
        };
        self.record(
            inner,
            Change {
                kind,
                resource: resource.to_owned(),
                revision,
                object: object.clone(),
                previous,
            },
        );
        object
    }

    /// Remembers a change and sends it to the watches. Called with the lock held, so that a
    /// watch subscribing under the lock sees every change exactly once: in its snapshot or live.
    fn record(&self, inner: &mut Inner, change: Change) {
        let change = Arc::new(change);
        if inner.history.len() == HISTORY
            && let Some(oldest) = inner.history.pop_front()
        {
            inner.compacted = oldest.revision;
        }
        inner.history.push_back(Arc::clone(&change));
        // No receivers is not an error: nobody is watching.
        let _ = self.changes.send(change);
    }

    /// Starts a watch of `resource`: from its current objects (`after` = `None`), or from the
    /// changes after revision `after`. `Err` carries the compacted revision when `after` is
    /// older than the history kept.
    pub(super) fn subscribe(
        &self,
        resource: &str,
        after: Option<u64>,
    ) -> Result<Subscription, u64> {
        let inner = self.lock();
        let live = self.changes.subscribe();
        let (current, replay) = match after {
            None => {
                let current = inner
                    .objects
                    .iter()
                    .filter(|((r, _, _), _)| r == resource)
                    .map(|(_, object)| object.clone())
                    .collect();
                (current, Vec::new())
            }
            Some(after) => (Vec::new(), Self::history_after(&inner, resource, after)?),
        };
        Ok(Subscription {
            current,
            replay,
            revision: inner.revision,
            live,
        })
    }

    /// The remembered changes of `resource` after revision `after`, and the current revision;
    /// for a watcher that fell behind the live fan-out. `Err` as [`Store::subscribe`].
    pub(super) fn replay(
        &self,
        resource: &str,
        after: u64,
    ) -> Result<(Vec<Arc<Change>>, u64), u64> {
        let inner = self.lock();
        Ok((
            Self::history_after(&inner, resource, after)?,
            inner.revision,
        ))
    }

    fn history_after(inner: &Inner, resource: &str, after: u64) -> Result<Vec<Arc<Change>>, u64> {
        if after < inner.compacted {
            return Err(inner.compacted);
        }
        Ok(inner
            .history
            .iter()
            .filter(|c| c.revision > after && c.resource == resource)
            .cloned()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm(name: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": name, "namespace": "default"}, "data": {"a": "1"}})
    }

    #[test]
    fn writes_take_increasing_revisions() {
        let store = Store::new();
        let created = store.create("configmaps", cm("a"), false).expect("created");
        assert_eq!(created["metadata"]["resourceVersion"], "1");
        let uid = created["metadata"]["uid"].clone();
        assert_eq!(uid.as_str().map(str::len), Some(36));
        assert!(matches!(
            store.create("configmaps", cm("a"), false),
            Err(StoreError::AlreadyExists)
        ));
        let updated = store
            .update("configmaps", Some("default"), "a", false, |current| {
                let mut next = current.clone();
                next["data"]["a"] = json!("2");
                next["metadata"]["uid"] = json!("forged");
                Ok(next)
            })
            .expect("updated");
        assert_eq!(updated["metadata"]["resourceVersion"], "2");
        assert_eq!(updated["metadata"]["uid"], uid);
        let deleted = store
            .delete("configmaps", Some("default"), "a", false)
            .expect("deleted");
        assert_eq!(deleted["metadata"]["resourceVersion"], "3");
        assert_eq!(store.list("configmaps", None), (vec![], 3));
    }

    #[test]
    fn dry_runs_change_nothing() {
        let store = Store::new();
        let created = store.create("configmaps", cm("a"), true).expect("dry run");
        assert!(created["metadata"].get("resourceVersion").is_none());
        assert!(store.get("configmaps", Some("default"), "a").is_none());
        store.put("configmaps", cm("a")).expect("put");
        store
            .update("configmaps", Some("default"), "a", true, |_| Ok(cm("a")))
            .expect("dry run");
        assert!(
            store
                .delete("configmaps", Some("default"), "a", true)
                .is_some()
        );
        assert_eq!(store.list("configmaps", None).1, 1);
    }

    #[test]
    fn subscriptions_replay_after_a_revision() {
        let store = Store::new();
        store.put("configmaps", cm("a")).expect("put");
        store.put("configmaps", cm("b")).expect("put");
        store.put("secrets", cm("s")).expect("put");
        let from_now = store.subscribe("configmaps", None).expect("subscribes");
        assert_eq!(from_now.current.len(), 2);
        assert_eq!(from_now.revision, 3);
        let from_one = store.subscribe("configmaps", Some(1)).expect("subscribes");
        let revisions: Vec<_> = from_one.replay.iter().map(|c| c.revision).collect();
        assert_eq!(revisions, [2]);
    }
}
