//! Everything gcsafety knows about GLib and GStreamer objects: how each kind
//! of registration is validated, referenced (floating references sunk),
//! upgraded for an access (weak references) and released. The table stores
//! only a pointer and the [`Payload`] built here.
//!
//! # Validation without crashing
//!
//! A `void *` from C may point at a `GTypeInstance` (GObject, GstObject), whose
//! first word is its class pointer, or at a `GstMiniObject`, whose first word
//! is a `GType`. GLib's own checks (`g_type_check_instance_is_a`) read through
//! the first word as a class pointer, which is wrong for a mini object. So the
//! first word is first compared (by value, without dereferencing it) with the
//! GTypes of GStreamer's mini-object types, as `GST_IS_MINI_OBJECT_TYPE` does;
//! only when it is none of them is the object treated as a type instance.
//! For `GCS_KIND_MINI_OBJECT` with a type outside that list (a mini-object
//! type defined by an application), the object is accepted when its first word
//! is not a registered class pointer and names a boxed GType. Validation
//! cannot make an arbitrary address safe to read: the pointer must point at
//! *some* live object of one of these shapes.

use core::ffi::{CStr, c_void};
use core::ptr::NonNull;
use std::sync::OnceLock;

use glib_sys::{GType, gpointer};
use gobject_sys::{GObject, GTypeInstance, GWeakRef};
use gstreamer_sys as gst_sys;

use crate::error::{Error, ErrorCode};
use crate::table::Published;

/// What kind of object a registration holds. Values are the ABI's `GcsObjectKind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Kind {
    /// A `GstObject`: `gst_object_ref_sink` at registration, `gst_object_unref` at release.
    GstObject = 0,
    /// Any `GObject`: `g_object_ref_sink` / `g_object_unref`.
    GObject = 1,
    /// A `GstMiniObject` (`GstBuffer`, `GstSample`, `GstCaps`, ...): `gst_mini_object_ref` / `unref`.
    MiniObject = 2,
    /// Any pointer, released by the caller's release function.
    Pointer = 3,
    /// A `GObject` held through a `GWeakRef`: no strong reference; each access upgrades.
    WeakGObject = 4,
}

impl Kind {
    /// The kind for an ABI value, if it is one.
    pub fn from_raw(raw: i32) -> Option<Kind> {
        Some(match raw {
            0 => Kind::GstObject,
            1 => Kind::GObject,
            2 => Kind::MiniObject,
            3 => Kind::Pointer,
            4 => Kind::WeakGObject,
            _ => return None,
        })
    }

    /// The ABI name of the kind.
    pub fn name(self) -> &'static str {
        match self {
            Kind::GstObject => "GCS_KIND_GST_OBJECT",
            Kind::GObject => "GCS_KIND_GOBJECT",
            Kind::MiniObject => "GCS_KIND_MINI_OBJECT",
            Kind::Pointer => "GCS_KIND_POINTER",
            Kind::WeakGObject => "GCS_KIND_WEAK_GOBJECT",
        }
    }
}

/// A release function for [`Kind::Pointer`] registrations:
/// `release(object, user_data)`, called exactly once, on the thread that ends
/// the last access (or unregisters), with no gcsafety lock held. May unwind:
/// a Rust panic is caught (the release counts as done).
pub type ReleaseFn = unsafe extern "C-unwind" fn(object: *mut c_void, user_data: *mut c_void);

/// What a registration holds and how to let go of it.
#[derive(Debug)]
pub(crate) enum Payload {
    /// A strong reference to a `GstObject`.
    GstObject {
        object: NonNull<gst_sys::GstObject>,
        set_null_state: bool,
    },
    /// A strong reference to a `GObject`.
    GObject { object: NonNull<GObject> },
    /// A strong reference to a `GstMiniObject`.
    MiniObject {
        object: NonNull<gst_sys::GstMiniObject>,
    },
    /// A caller's pointer and release function.
    Pointer {
        object: *mut c_void,
        release: Option<ReleaseFn>,
        data: *mut c_void,
    },
    /// A weak reference (boxed: a `GWeakRef` must not move while initialised)
    /// and the object's address (fixed for its life), for accesses to unref.
    Weak {
        weak: NonNull<GWeakRef>,
        address: NonNull<c_void>,
    },
}

// SAFETY: GObject and GstMiniObject reference counting is thread-safe, a
// GWeakRef may be read from any thread, and for `Pointer` the ABI documents
// that the release function runs on whichever thread releases.
unsafe impl Send for Payload {}

/// The pointer an access sees: either the object itself, or a weak
/// reference to upgrade (the slot's slow-path bit says which, so that any
/// pointer value, odd ones included, can be registered as GCS_KIND_POINTER).
pub(crate) enum Target {
    /// Use the object directly; the registration keeps it alive.
    Direct(*mut c_void),
    /// A weakly held object: upgrade this `GWeakRef` for the access's duration.
    Weak(NonNull<GWeakRef>),
}

impl Target {
    /// What an access of a registration that published `published` sees.
    #[inline]
    pub(crate) fn of(published: &Published) -> Target {
        match NonNull::new(published.object) {
            Some(weak) if published.slow => Target::Weak(weak.cast()),
            _ => Target::Direct(published.object),
        }
    }

    /// For a weak registration, the object an upgraded access holds a
    /// strong reference to (the address recorded at registration).
    pub(crate) fn upgraded_address(published: &Published) -> Option<NonNull<c_void>> {
        if published.slow {
            NonNull::new(published.aux)
        } else {
            None
        }
    }
}

/// Take a strong reference for an access through a weak reference.
/// (transfer full) on success; `None` once the object is finalizing or gone.
pub(crate) fn upgrade(weak: NonNull<GWeakRef>) -> Option<NonNull<c_void>> {
    // SAFETY: `weak` was initialised by g_weak_ref_init at registration and is
    // cleared only at release, which cannot happen while an access is in flight.
    NonNull::new(unsafe { gobject_sys::g_weak_ref_get(weak.as_ptr()) }.cast())
}

/// Drop the strong reference an [`upgrade`] took.
pub(crate) fn downgrade(object: NonNull<c_void>) {
    // SAFETY: `object` is a strong reference returned by g_weak_ref_get.
    unsafe { gobject_sys::g_object_unref(object.as_ptr().cast()) }
}

impl Payload {
    /// What the slot publishes for accesses: the object, or for a weak
    /// registration its `GWeakRef` (to upgrade, lock-free on our side) and
    /// the object's address (for ends by handle value, which unref it).
    pub(crate) fn published(&self, accounting: *mut c_void) -> Published {
        let (object, aux, slow) = match self {
            Payload::Weak { weak, address } => (weak.as_ptr().cast(), address.as_ptr(), true),
            other => (other.object_pointer(), core::ptr::null_mut(), false),
        };
        Published {
            object,
            accounting,
            aux,
            slow,
        }
    }

    /// The object pointer of a strong registration (the address of a weak one).
    pub(crate) fn object_pointer(&self) -> *mut c_void {
        match self {
            Payload::GstObject { object, .. } => object.as_ptr().cast(),
            Payload::GObject { object } => object.as_ptr().cast(),
            Payload::MiniObject { object } => object.as_ptr().cast(),
            Payload::Pointer { object, .. } => *object,
            Payload::Weak { address, .. } => address.as_ptr(),
        }
    }

    /// The object as a `GObject *` to name a debug line after (as
    /// `GST_DEBUG_OBJECT` does), for the kinds that hold a strong reference
    /// to a GObject; NULL for the others (a mini object is not a GObject, a
    /// weakly held one may be gone).
    pub(crate) fn debug_object(&self) -> *mut c_void {
        match self {
            Payload::GstObject { object, .. } => object.as_ptr().cast(),
            Payload::GObject { object } => object.as_ptr().cast(),
            _ => core::ptr::null_mut(),
        }
    }

    /// The element a release must set to NULL first
    /// (`GCS_REGISTER_SET_NULL_STATE` on a `GstElement`), if any.
    pub(crate) fn null_state_element(&self) -> Option<NonNull<gst_sys::GstElement>> {
        match self {
            Payload::GstObject {
                object,
                set_null_state: true,
            } => {
                // SAFETY: a live GstObject (the registration holds a reference).
                let is_element = unsafe {
                    gobject_sys::g_type_check_instance_is_a(
                        object.as_ptr().cast::<GTypeInstance>(),
                        gst_sys::gst_element_get_type(),
                    ) != 0
                };
                is_element.then(|| object.cast())
            }
            _ => None,
        }
    }

    /// The object as cleanups should see it: the object for strong kinds; for
    /// a weak one a strong reference while it is still alive (to be dropped
    /// with [`downgrade`] by the caller, returned second), else NULL.
    pub(crate) fn object_for_cleanup(&self) -> (*mut c_void, Option<NonNull<c_void>>) {
        match self {
            Payload::Weak { weak, .. } => match upgrade(*weak) {
                Some(strong) => (strong.as_ptr(), Some(strong)),
                None => (core::ptr::null_mut(), None),
            },
            other => (other.object_pointer(), None),
        }
    }

    /// Drop the registration's reference (or call the release function).
    /// Exactly once per registration: consumes the payload. `true` if a
    /// release function panicked (caught here: the release is done anyway).
    pub(crate) fn release(self) -> bool {
        let mut panicked = false;
        match self {
            Payload::GstObject {
                object,
                set_null_state,
            } => {
                if set_null_state {
                    set_element_state_null(object);
                }
                // SAFETY: the registration owns one reference, taken at registration.
                unsafe { gst_sys::gst_object_unref(object.as_ptr().cast()) }
            }
            // SAFETY: as above.
            Payload::GObject { object } => unsafe { gobject_sys::g_object_unref(object.as_ptr()) },
            // SAFETY: as above.
            Payload::MiniObject { object } => unsafe {
                gst_sys::gst_mini_object_unref(object.as_ptr())
            },
            Payload::Pointer {
                object,
                release,
                data,
            } => {
                if let Some(release) = release {
                    let call = std::panic::AssertUnwindSafe(|| {
                        // SAFETY: the caller registered this function for this
                        // pointer and data; it is called exactly once, here.
                        unsafe { release(object, data) }
                    });
                    panicked = std::panic::catch_unwind(call).is_err();
                }
            }
            Payload::Weak { weak, .. } => {
                // SAFETY: `weak` is the Box leaked at registration, initialised
                // with g_weak_ref_init; no access is in flight any more.
                unsafe {
                    gobject_sys::g_weak_ref_clear(weak.as_ptr());
                    drop(Box::from_raw(weak.as_ptr()));
                }
            }
        }
        panicked
    }
}

/// `gst_element_set_state(element, GST_STATE_NULL)` if `object` is a `GstElement`.
pub(crate) fn set_element_state_null(object: NonNull<gst_sys::GstObject>) {
    // SAFETY: `object` is a live GstObject (the registration holds a reference).
    unsafe {
        let instance = object.as_ptr().cast::<GTypeInstance>();
        if gobject_sys::g_type_check_instance_is_a(instance, gst_sys::gst_element_get_type()) != 0 {
            gst_sys::gst_element_set_state(object.as_ptr().cast(), gst_sys::GST_STATE_NULL);
        }
    }
}

/// GTypes of GStreamer's own mini-object types, compared by value only.
fn known_mini_object_types() -> &'static [GType] {
    static TYPES: OnceLock<Vec<GType>> = OnceLock::new();
    TYPES.get_or_init(|| {
        // SAFETY: the *_get_type functions register their type on first call
        // and have no other precondition.
        unsafe {
            vec![
                gst_sys::gst_buffer_get_type(),
                gst_sys::gst_buffer_list_get_type(),
                gst_sys::gst_caps_get_type(),
                gst_sys::gst_sample_get_type(),
                gst_sys::gst_event_get_type(),
                gst_sys::gst_message_get_type(),
                gst_sys::gst_query_get_type(),
                gst_sys::gst_memory_get_type(),
                gst_sys::gst_context_get_type(),
                gst_sys::gst_tag_list_get_type(),
                gst_sys::gst_toc_get_type(),
                gst_sys::gst_toc_entry_get_type(),
                gst_sys::gst_promise_get_type(),
                gst_sys::gst_uri_get_type(),
            ]
        }
    })
}

/// The shape of the memory `object` points at.
enum Shape {
    /// A `GstMiniObject` of this GType.
    MiniObject(GType),
    /// A `GTypeInstance` (its class pointer is registered with GLib).
    Instance(GType),
}

/// Tell a mini object from a type instance; see the module documentation.
///
/// # Safety
/// `object` must point at a live GTypeInstance or GstMiniObject.
unsafe fn shape_of(object: NonNull<c_void>) -> Option<Shape> {
    // SAFETY: both shapes start with one pointer-sized word.
    let first = unsafe { object.as_ptr().cast::<GType>().read() };
    if known_mini_object_types().contains(&first) {
        return Some(Shape::MiniObject(first));
    }
    if first <= gobject_sys::G_TYPE_FUNDAMENTAL_MAX as GType {
        // Neither a class pointer nor the GType of any mini object (those
        // are all derived boxed types, never fundamental).
        return None;
    }
    // `first` points at valid memory in both shapes (a class, or a TypeNode);
    // a class's first word is its GType, and that type's class is `first`.
    // SAFETY: reading one word of valid memory.
    let class_type = unsafe { (first as *const GType).read() };
    // SAFETY: g_type_class_peek accepts any GType value that is a fundamental
    // id or a type node; for a TypeNode's first word (a small reference count)
    // it looks up the static fundamental table.
    let class = unsafe { gobject_sys::g_type_class_peek(class_type) };
    if class as GType == first {
        return Some(Shape::Instance(class_type));
    }
    // SAFETY: `first` is not a class, so it is the GType of a mini object.
    if unsafe { gobject_sys::g_type_fundamental(first) } == gobject_sys::G_TYPE_BOXED {
        return Some(Shape::MiniObject(first));
    }
    None
}

/// The static name of a GType (GLib never frees type names).
fn type_c_name(gtype: GType) -> &'static CStr {
    // SAFETY: g_type_name returns a static, interned string (or NULL) for any
    // registered GType, which every caller passes.
    let name = unsafe { gobject_sys::g_type_name(gtype) };
    if name.is_null() {
        return c"(unknown GType)";
    }
    // SAFETY: GType names are NUL-terminated static strings, never freed.
    let name = unsafe { CStr::from_ptr(name) };
    // GType names are ASCII by g_type_register_*'s own check; be sure.
    if name.to_str().is_err() {
        c"(non-UTF-8 GType name)"
    } else {
        name
    }
}

fn type_name_of(gtype: GType) -> &'static str {
    type_c_name(gtype).to_str().unwrap_or("?")
}

/// Checks an object against its kind and returns its GType name.
/// With `check` false the caller vouches for the kind, and only the type name
/// is read.
///
/// # Safety
/// `object` must point at a live object of one of the shapes the kind names
/// (any pointer for [`Kind::Pointer`]).
pub(crate) unsafe fn validate(
    kind: Kind,
    object: NonNull<c_void>,
    check: bool,
) -> Result<&'static CStr, Error> {
    if kind == Kind::Pointer {
        return Ok(c"pointer");
    }
    let wrong = |what: String| Error::new(ErrorCode::WrongType, what);
    if !check {
        // SAFETY: the caller vouches for the shape.
        let gtype = unsafe {
            match kind {
                Kind::MiniObject => object.as_ptr().cast::<GType>().read(),
                _ => (*(*object.as_ptr().cast::<GTypeInstance>()).g_class).g_type,
            }
        };
        return Ok(type_c_name(gtype));
    }
    // SAFETY: forwarded precondition.
    match (kind, unsafe { shape_of(object) }) {
        (Kind::MiniObject, Some(Shape::MiniObject(gtype))) => Ok(type_c_name(gtype)),
        (Kind::MiniObject, Some(Shape::Instance(gtype))) => Err(wrong(format!(
            "object {:p} is a {} (a GTypeInstance), not a GstMiniObject ({})",
            object,
            type_name_of(gtype),
            kind.name()
        ))),
        (_, Some(Shape::MiniObject(gtype))) => Err(wrong(format!(
            "object {:p} is a {} (a GstMiniObject), not a {} ({})",
            object,
            type_name_of(gtype),
            if kind == Kind::GstObject {
                "GstObject"
            } else {
                "GObject"
            },
            kind.name()
        ))),
        (_, Some(Shape::Instance(gtype))) => {
            let expected = if kind == Kind::GstObject {
                // SAFETY: gst_object_get_type has no precondition.
                unsafe { gst_sys::gst_object_get_type() }
            } else {
                gobject_sys::G_TYPE_OBJECT
            };
            // SAFETY: `gtype` is a registered type (its class exists).
            if unsafe { gobject_sys::g_type_is_a(gtype, expected) } != 0 {
                Ok(type_c_name(gtype))
            } else {
                Err(wrong(format!(
                    "object {:p} is a {}, not a {} ({})",
                    object,
                    type_name_of(gtype),
                    type_name_of(expected),
                    kind.name()
                )))
            }
        }
        (_, None) => Err(wrong(format!(
            "object {:p} is neither a GTypeInstance nor a GstMiniObject known to GLib ({})",
            object,
            kind.name()
        ))),
    }
}

/// The kind a registration of `object` should have: [`Kind::GstObject`] for
/// a `GstObject`, [`Kind::GObject`] for any other `GObject`,
/// [`Kind::MiniObject`] for a `GstMiniObject`; `WrongType` for anything else
/// (a `GTypeInstance` that is not a `GObject`, memory of neither shape).
/// Bindings use it to register the object behind a wrapper they cannot type.
///
/// # Safety
/// `object` must point at a live `GTypeInstance` or `GstMiniObject` (as for
/// a registration with state checking).
pub(crate) unsafe fn kind_of(object: NonNull<c_void>) -> Result<Kind, Error> {
    // SAFETY: forwarded precondition.
    match unsafe { shape_of(object) } {
        Some(Shape::MiniObject(_)) => Ok(Kind::MiniObject),
        Some(Shape::Instance(gtype)) => {
            // SAFETY: gst_object_get_type has no precondition; `gtype` is a
            // registered type (its class exists).
            let (is_gst_object, is_gobject) = unsafe {
                (
                    gobject_sys::g_type_is_a(gtype, gst_sys::gst_object_get_type()) != 0,
                    gobject_sys::g_type_is_a(gtype, gobject_sys::G_TYPE_OBJECT) != 0,
                )
            };
            if is_gst_object {
                Ok(Kind::GstObject)
            } else if is_gobject {
                Ok(Kind::GObject)
            } else {
                Err(Error::new(
                    ErrorCode::WrongType,
                    format!(
                        "object {:p} is a {}, a GTypeInstance that is not a GObject",
                        object,
                        type_name_of(gtype)
                    ),
                ))
            }
        }
        None => Err(Error::new(
            ErrorCode::WrongType,
            format!(
                "object {object:p} is neither a GTypeInstance nor a GstMiniObject known to GLib"
            ),
        )),
    }
}

/// Take the registration's reference: sink a floating reference, else add
/// one; for a weak kind, initialise a `GWeakRef`.
///
/// # Safety
/// `object` must be a live object of `kind` (validated, or vouched for);
/// for [`Kind::Pointer`], `release` must be safe to call once with it.
pub(crate) unsafe fn acquire(
    kind: Kind,
    object: NonNull<c_void>,
    release: Option<ReleaseFn>,
    release_data: *mut c_void,
    set_null_state: bool,
) -> Payload {
    // SAFETY: forwarded precondition for each kind.
    unsafe {
        match kind {
            Kind::GstObject => {
                gst_sys::gst_object_ref_sink(object.as_ptr() as gpointer);
                Payload::GstObject {
                    object: object.cast(),
                    set_null_state,
                }
            }
            Kind::GObject => {
                gobject_sys::g_object_ref_sink(object.as_ptr().cast());
                Payload::GObject {
                    object: object.cast(),
                }
            }
            Kind::MiniObject => {
                gst_sys::gst_mini_object_ref(object.as_ptr().cast());
                Payload::MiniObject {
                    object: object.cast(),
                }
            }
            Kind::Pointer => Payload::Pointer {
                object: object.as_ptr(),
                release,
                data: release_data,
            },
            Kind::WeakGObject => {
                let weak = Box::into_raw(Box::new(core::mem::zeroed::<GWeakRef>()));
                gobject_sys::g_weak_ref_init(weak, object.as_ptr().cast());
                Payload::Weak {
                    weak: NonNull::new_unchecked(weak),
                    address: object,
                }
            }
        }
    }
}
