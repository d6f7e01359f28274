//! The decision cache: trace IDs decided recently, so late spans of a trace that has left
//! memory still follow its decision. Bounded; the oldest entry goes first.

use std::collections::{HashSet, VecDeque};

/// A bounded set of trace IDs with first-in, first-out eviction.
#[derive(Debug, Default)]
pub struct DecisionCache {
    capacity: usize,
    ids: HashSet<[u8; 16]>,
    order: VecDeque<[u8; 16]>,
}

impl DecisionCache {
    /// A cache of at most `capacity` IDs; `0` remembers nothing.
    pub fn new(capacity: usize) -> Self {
        DecisionCache {
            capacity,
            ids: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    /// Remembers `id`, forgetting the oldest ID when full.
    pub fn insert(&mut self, id: [u8; 16]) {
        if self.capacity == 0 || !self.ids.insert(id) {
            return;
        }
        if self.order.len() == self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.ids.remove(&old);
            }
        }
        self.order.push_back(id);
    }

    /// True when `id` is remembered.
    pub fn contains(&self, id: &[u8; 16]) -> bool {
        self.ids.contains(id)
    }

    /// Number of IDs remembered.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forgets_the_oldest_when_full() {
        let mut c = DecisionCache::new(2);
        c.insert([1; 16]);
        c.insert([2; 16]);
        c.insert([1; 16]);
        c.insert([3; 16]);
        assert!(!c.contains(&[1; 16]));
        assert!(c.contains(&[2; 16]) && c.contains(&[3; 16]));
        assert_eq!(c.len(), 2);
        let mut off = DecisionCache::new(0);
        off.insert([1; 16]);
        assert!(off.is_empty());
    }
}
