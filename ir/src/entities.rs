//! Entity references: typed `u32` indices into arenas, in the style of cranelift's entity crate.
//!
//! An arena is indexed only by its own key type, so a `Value` can never index the
//! instruction arena by accident.

use std::fmt;
use std::marker::PhantomData;

/// A key into an [`Arena`].
pub trait EntityRef: Copy + Eq + Ord + std::hash::Hash + fmt::Debug {
    /// Build the key for arena slot `index`.
    fn new(index: usize) -> Self;
    /// The arena slot this key names.
    fn index(self) -> usize;
}

macro_rules! entity {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(u32);

        impl EntityRef for $name {
            fn new(index: usize) -> Self {
                Self(u32::try_from(index).expect("entity index overflows u32"))
            }
            fn index(self) -> usize {
                self.0 as usize
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }
    };
}

entity!(
    /// An SSA value: the result of one instruction or a block parameter.
    Value,
    "v"
);
entity!(
    /// An instruction (one op producing one value).
    Inst,
    "inst"
);
entity!(
    /// A basic block with parameters and a terminator.
    Block,
    "block"
);

/// A growable vector indexed by one entity type only.
#[derive(Clone, PartialEq)]
pub struct Arena<K, V> {
    items: Vec<V>,
    _key: PhantomData<K>,
}

impl<K: EntityRef, V> Arena<K, V> {
    /// An empty arena.
    pub fn new() -> Self {
        Self {
            items: Vec::new(),
            _key: PhantomData,
        }
    }
    /// Store `value` and return its key.
    pub fn push(&mut self, value: V) -> K {
        let k = K::new(self.items.len());
        self.items.push(value);
        k
    }
    /// Number of entries ever pushed.
    pub fn len(&self) -> usize {
        self.items.len()
    }
    /// Whether nothing was ever pushed.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
    /// Whether `k` names an entry of this arena.
    pub fn contains(&self, k: K) -> bool {
        k.index() < self.items.len()
    }
    /// The entry for `k`, if it exists.
    pub fn get(&self, k: K) -> Option<&V> {
        self.items.get(k.index())
    }
    /// All keys, in push order.
    pub fn keys(&self) -> impl Iterator<Item = K> + use<K, V> {
        (0..self.items.len()).map(K::new)
    }
    /// All `(key, entry)` pairs, in push order.
    pub fn iter(&self) -> impl Iterator<Item = (K, &V)> {
        self.items.iter().enumerate().map(|(i, v)| (K::new(i), v))
    }
}

impl<K: EntityRef, V> Default for Arena<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: EntityRef, V> std::ops::Index<K> for Arena<K, V> {
    type Output = V;
    fn index(&self, k: K) -> &V {
        &self.items[k.index()]
    }
}

impl<K: EntityRef, V> std::ops::IndexMut<K> for Arena<K, V> {
    fn index_mut(&mut self, k: K) -> &mut V {
        &mut self.items[k.index()]
    }
}

impl<K: EntityRef, V: fmt::Debug> fmt::Debug for Arena<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// A secondary map: a value per entity, with a default for entities never set.
#[derive(Clone, Debug)]
pub struct SecondaryMap<K, V> {
    items: Vec<V>,
    default: V,
    _key: PhantomData<K>,
}

impl<K: EntityRef, V: Clone> SecondaryMap<K, V> {
    /// A map whose every entry starts as `default`.
    pub fn with_default(default: V) -> Self {
        Self {
            items: Vec::new(),
            default,
            _key: PhantomData,
        }
    }
    /// The entry for `k`.
    pub fn get(&self, k: K) -> &V {
        self.items.get(k.index()).unwrap_or(&self.default)
    }
    /// Set the entry for `k`.
    pub fn set(&mut self, k: K, v: V) {
        if k.index() >= self.items.len() {
            self.items.resize(k.index() + 1, self.default.clone());
        }
        self.items[k.index()] = v;
    }
}
