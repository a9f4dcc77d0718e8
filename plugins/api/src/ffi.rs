//! Safe helpers over the raw [`crate::abi`] types: strings, sinks that append into a `Vec`, and
//! [`guarded`], which runs one side's code so that neither an error nor a panic crosses the
//! boundary as anything but a [`Status`] and a message.

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::abi::{ByteSink, F32Sink, RStr, Status, STATUS_ERROR, STATUS_OK, STATUS_PANIC};
use crate::Error;

impl RStr {
    pub const fn new(s: &str) -> RStr {
        RStr { ptr: s.as_ptr(), len: s.len() }
    }

    /// # Safety
    /// `ptr..ptr+len` must be readable for `'a` (true for an `RStr` received as a call argument,
    /// during the call, or one in a loaded library's descriptor, while it stays loaded).
    pub unsafe fn as_str<'a>(&self) -> Result<&'a str, Error> {
        if self.len == 0 {
            return Ok("");
        }
        let bytes = std::slice::from_raw_parts(self.ptr, self.len);
        std::str::from_utf8(bytes).map_err(|_| Error::new("text across the plugin boundary is not UTF-8"))
    }
}

extern "C" fn append_bytes(ctx: *mut c_void, ptr: *const u8, len: usize) {
    // SAFETY: `ctx` is the `Vec<u8>` given to `byte_sink`, alive for the call; `ptr..ptr+len` is
    // the callee's readable buffer.
    let v = unsafe { &mut *(ctx as *mut Vec<u8>) };
    if len > 0 {
        v.extend_from_slice(unsafe { std::slice::from_raw_parts(ptr, len) });
    }
}

extern "C" fn append_f32(ctx: *mut c_void, ptr: *const f32, len: usize) {
    // SAFETY: as in `append_bytes`.
    let v = unsafe { &mut *(ctx as *mut Vec<f32>) };
    if len > 0 {
        v.extend_from_slice(unsafe { std::slice::from_raw_parts(ptr, len) });
    }
}

/// A sink appending to `v`; valid while `v` is borrowed.
pub fn byte_sink(v: &mut Vec<u8>) -> ByteSink {
    ByteSink { ctx: v as *mut Vec<u8> as *mut c_void, write: append_bytes }
}

/// A sink appending to `v`; valid while `v` is borrowed.
pub fn f32_sink(v: &mut Vec<f32>) -> F32Sink {
    F32Sink { ctx: v as *mut Vec<f32> as *mut c_void, write: append_f32 }
}

impl ByteSink {
    pub fn send(&self, bytes: &[u8]) {
        (self.write)(self.ctx, bytes.as_ptr(), bytes.len());
    }
}

impl F32Sink {
    pub fn send(&self, values: &[f32]) {
        (self.write)(self.ctx, values.as_ptr(), values.len());
    }
}

/// The message of a caught panic, when its payload is text (`panic!` with a message always is).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> Option<String> {
    payload.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| payload.downcast_ref::<String>().cloned())
}

/// Runs `f`, turning its error or panic into a status and a message on `error`.
pub fn guarded(error: ByteSink, f: impl FnOnce() -> Result<(), Error>) -> Status {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => STATUS_OK,
        Ok(Err(e)) => {
            error.send(e.to_string().as_bytes());
            STATUS_ERROR
        }
        Err(panic) => {
            let msg = panic_message(panic.as_ref()).unwrap_or_else(|| "non-string panic payload".into());
            error.send(format!("panicked: {msg}").as_bytes());
            STATUS_PANIC
        }
    }
}

/// Turns a status and the collected error message back into a `Result`.
pub fn check_status(status: Status, error: Vec<u8>, what: &str) -> Result<(), Error> {
    let msg = String::from_utf8_lossy(&error);
    match status {
        STATUS_OK => Ok(()),
        STATUS_ERROR => Err(Error::new(format!("{what}: {msg}"))),
        STATUS_PANIC => Err(Error::new(format!("{what} {msg}"))),
        other => Err(Error::new(format!("{what}: unknown status {other} ({msg})"))),
    }
}
