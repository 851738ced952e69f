//! Type names, interned, as C strings (the ABI hands them out).
//!
//! Every registration carries a type name (for messages, statistics and the
//! leak report). GType names are already static strings owned by GLib;
//! caller-given names are interned once, so that registering a million
//! `GstBuffer`s copies the string once. The interner is bounded
//! ([`MAX_INTERNED`] distinct names): past it, names are owned by their
//! registration instead, so a program that invents a new type name per object
//! costs an allocation per registration, never unbounded memory.

use std::collections::HashSet;
use std::ffi::{CStr, CString};
use std::sync::{Arc, OnceLock};

/// How many distinct caller-given type names are interned (leaked) at most.
pub const MAX_INTERNED: usize = 4096;

/// A type name: static, interned, or owned. Always valid UTF-8.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Name {
    /// A string that lives as long as the process (GType names, interned names).
    Static(&'static CStr),
    /// A name the interner had no room for.
    Owned(Arc<CStr>),
}

impl Name {
    pub(crate) fn as_c_str(&self) -> &CStr {
        match self {
            Name::Static(s) => s,
            Name::Owned(s) => s,
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        // Every constructor takes UTF-8 (`&str`, or GType names checked once).
        self.as_c_str().to_str().unwrap_or("?")
    }
}

/// Intern `name`, or own it when the interner is full.
fn interned() -> &'static parking_lot::RwLock<HashSet<&'static CStr>> {
    static INTERNED: OnceLock<parking_lot::RwLock<HashSet<&'static CStr>>> = OnceLock::new();
    INTERNED.get_or_init(Default::default)
}

/// Fork support: the interner's lock.
#[cfg(not(loom))]
pub(crate) fn fork_lock() -> &'static parking_lot::RwLock<HashSet<&'static CStr>> {
    interned()
}

pub(crate) fn intern(name: &CStr) -> Name {
    std::thread_local! {
        /// The last name this thread interned: a program registering many
        /// objects of one type takes no lock (a lock is a write to a line
        /// that every registering thread writes).
        static LAST: std::cell::Cell<Option<&'static CStr>> = const { std::cell::Cell::new(None) };
    }
    if let Ok(Some(last)) = LAST.try_with(|last| last.get().filter(|last| *last == name)) {
        return Name::Static(last);
    }
    let found = intern_locked(name);
    if let Name::Static(interned) = found {
        let _ = LAST.try_with(|last| last.set(Some(interned)));
    }
    found
}

fn intern_locked(name: &CStr) -> Name {
    let set = interned();
    if let Some(found) = set.read().get(name) {
        return Name::Static(found);
    }
    let mut set = set.write();
    if let Some(found) = set.get(name) {
        return Name::Static(found);
    }
    if set.len() >= MAX_INTERNED {
        return Name::Owned(Arc::from(name));
    }
    let leaked: &'static CStr = Box::leak(CString::from(name).into_boxed_c_str());
    set.insert(leaked);
    Name::Static(leaked)
}
