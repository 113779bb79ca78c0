//! A setting the configuration can replace while the platform runs (a reload): readers
//! take the value in force, and what they took stays whole while they use it.

use std::sync::{Arc, RwLock};

/// A value in force, replaceable as a whole.
#[derive(Debug)]
pub struct Live<T>(RwLock<Arc<T>>);

impl<T> Live<T> {
    /// `value` in force.
    pub fn new(value: Arc<T>) -> Arc<Self> {
        Arc::new(Live(RwLock::new(value)))
    }

    /// The value in force now.
    pub fn get(&self) -> Arc<T> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Puts `value` in force; those who took the previous one keep it until they let go.
    pub fn set(&self, value: Arc<T>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = value;
    }
}

impl<T> From<Arc<T>> for Live<T> {
    fn from(value: Arc<T>) -> Self {
        Live(RwLock::new(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_keeps_what_it_took_and_the_next_one_sees_the_new_value() {
        let live = Live::new(Arc::new(1));
        let taken = live.get();
        live.set(Arc::new(2));
        assert_eq!((*taken, *live.get()), (1, 2));
    }
}
