//! The simulated I/O manager's object tables (handles, file objects,
//! processes): slots in a vector, reused through a free list, each key
//! carrying its slot's generation so that a key of a removed object never
//! finds the object that took its slot. A lookup is an index, not a hash:
//! the request path looks up a handle, its process and its file object on
//! every request, and the benchmarks would charge that to the driver.

/// Names one object of a [`Slab`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Key {
    index: u32,
    generation: u32,
}

impl Key {
    /// A key no slab hands out.
    pub const NONE: Key = Key { index: u32::MAX, generation: 0 };
}

#[derive(Debug)]
struct Slot<T> {
    generation: u32,
    value: Option<T>,
}

#[derive(Debug)]
pub(super) struct Slab<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    len: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab { slots: Vec::new(), free: Vec::new(), len: 0 }
    }
}

impl<T> Slab<T> {
    pub fn insert(&mut self, value: T) -> Key {
        self.len += 1;
        if let Some(index) = self.free.pop() {
            let slot = &mut self.slots[index as usize];
            // A slot would have to be reused 2^32 times for a stale key to
            // find a new object; no simulation runs that long.
            slot.generation = slot.generation.wrapping_add(1);
            slot.value = Some(value);
            return Key { index, generation: slot.generation };
        }
        let index = u32::try_from(self.slots.len()).expect("fewer than 2^32 live objects");
        self.slots.push(Slot { generation: 0, value: Some(value) });
        Key { index, generation: 0 }
    }

    pub fn get(&self, key: Key) -> Option<&T> {
        self.slots.get(key.index as usize).filter(|s| s.generation == key.generation)?.value.as_ref()
    }

    pub fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        self.slots.get_mut(key.index as usize).filter(|s| s.generation == key.generation)?.value.as_mut()
    }

    pub fn remove(&mut self, key: Key) -> Option<T> {
        let value = self.slots.get_mut(key.index as usize).filter(|s| s.generation == key.generation)?.value.take()?;
        self.free.push(key.index);
        self.len -= 1;
        Some(value)
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = (Key, &T)> {
        self.slots.iter().enumerate().filter_map(|(index, slot)| {
            // CAST: slots are indexed by u32 (insert checks).
            let key = Key { index: index as u32, generation: slot.generation };
            slot.value.as_ref().map(|value| (key, value))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removed_key_never_finds_the_slot_s_next_object() {
        let mut slab = Slab::default();
        let a = slab.insert("a");
        let b = slab.insert("b");
        assert_eq!(slab.remove(a), Some("a"));
        assert_eq!(slab.remove(a), None, "removed once");
        let c = slab.insert("c");
        assert_eq!(slab.get(a), None, "a's slot now holds c");
        assert_eq!((slab.get(b), slab.get(c)), (Some(&"b"), Some(&"c")));
        assert_eq!(slab.get(Key::NONE), None);
        let mut keys: Vec<_> = slab.iter().map(|(k, v)| (*v, k)).collect();
        keys.sort_by_key(|(v, _)| *v);
        assert_eq!(keys, [("b", b), ("c", c)]);
        slab.remove(b);
        slab.remove(c);
        assert!(slab.is_empty());
    }
}
