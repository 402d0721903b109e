//! The name of a connection (or of its output Secret) as the operator's own
//! tables hold it: namespace and name in 48 bytes, names up to 24 bytes inside
//! it rather than on the heap.

use compact_str::CompactString;
use kube::runtime::reflector::{Lookup, ObjectRef};

use crate::crd::TrackViaConnection;

/// An object by namespace and name, a connection or its output Secret: 48
/// bytes, most names inside it (the tables keyed by it hold one per connection).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    namespace: CompactString,
    name: CompactString,
}

// The size the comment above promises (64-bit targets).
#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::size_of::<Key>() == 48);

impl Key {
    /// The connection `name` in `namespace`.
    pub fn new(namespace: Option<&str>, name: &str) -> Key {
        Key {
            namespace: namespace.unwrap_or_default().into(),
            name: name.into(),
        }
    }

    /// The key of the connection a controller's pass was for (its errors name it
    /// with an erased type).
    pub fn of_ref<K: Lookup + ?Sized>(obj: &ObjectRef<K>) -> Key {
        Key::new(obj.namespace.as_deref(), &obj.name)
    }

    /// The key of a stored connection.
    pub fn of(tvc: &TrackViaConnection) -> Key {
        let meta = &tvc.metadata;
        Key::new(
            meta.namespace.as_deref(),
            meta.name.as_deref().unwrap_or_default(),
        )
    }

    /// The connection's namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The connection's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A controller's reference to the connection.
    pub fn to_ref(&self) -> ObjectRef<TrackViaConnection> {
        ObjectRef::new(&self.name).within(&self.namespace)
    }
}
