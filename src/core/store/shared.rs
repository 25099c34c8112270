//! [`Shared`]: a copy-on-write field of the cluster state.
//!
//! Every CRM and LRM round works on a snapshot of the whole state, and
//! the daemon takes two a round; at 100 000 resources a deep copy of the
//! resource table and the manager status each time was most of an idle
//! daemon's CPU. A `Shared` field is an `Arc`: cloning a state shares it,
//! and a write ([`DerefMut`]) copies it only while a snapshot still
//! shares it (`Arc::make_mut`). Readers that want the value itself
//! (`Env::read_service_config`, `read_manager_status`) get the `Arc`
//! without a copy. Serialised as the value, so files and the Raft log are
//! unchanged.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A copy-on-write value (see the module doc).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Shared<T>(Arc<T>);

impl<T> Shared<T> {
    pub fn new(value: T) -> Shared<T> {
        Shared(Arc::new(value))
    }

    /// The shared value itself, without a copy.
    pub fn arc(&self) -> Arc<T> {
        Arc::clone(&self.0)
    }
}

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared(Arc::clone(&self.0))
    }
}

impl<T> Deref for Shared<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: Clone> DerefMut for Shared<T> {
    /// Copies the value first if a snapshot shares it.
    fn deref_mut(&mut self) -> &mut T {
        Arc::make_mut(&mut self.0)
    }
}

impl<T> From<T> for Shared<T> {
    fn from(value: T) -> Shared<T> {
        Shared::new(value)
    }
}

impl<'a, T> IntoIterator for &'a Shared<T>
where
    &'a T: IntoIterator,
{
    type Item = <&'a T as IntoIterator>::Item;
    type IntoIter = <&'a T as IntoIterator>::IntoIter;

    fn into_iter(self) -> Self::IntoIter {
        (&*self.0).into_iter()
    }
}

impl<T: Serialize> Serialize for Shared<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Shared<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(deserializer).map(Shared::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn a_clone_shares_until_written_and_a_write_leaves_the_other_alone() {
        let mut a: Shared<BTreeMap<u32, u32>> = Shared::new(BTreeMap::from([(1, 1)]));
        let b = a.clone();
        assert!(Arc::ptr_eq(&a.arc(), &b.arc()), "a clone copies nothing");
        a.insert(2, 2);
        assert!(!Arc::ptr_eq(&a.arc(), &b.arc()), "a shared value is copied on write");
        assert_eq!(b.len(), 1, "the snapshot keeps its value");
        assert_eq!(a.len(), 2);
        let before = a.arc();
        drop(before);
        let ptr = Arc::as_ptr(&a.arc());
        a.insert(3, 3);
        assert_eq!(Arc::as_ptr(&a.arc()), ptr, "an unshared value is written in place");
    }

    #[test]
    fn serialises_as_the_value() {
        let shared = Shared::new(vec![1, 2, 3]);
        let text = serde_json::to_string(&shared).unwrap();
        assert_eq!(text, "[1,2,3]");
        let back: Shared<Vec<i32>> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, shared);
    }
}
