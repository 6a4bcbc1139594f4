//! Reading and writing a glommio TCP stream shared by a connection's reader
//! and writer tasks.
//!
//! glommio keeps separate readiness sources for reads and writes, so the two
//! tasks can wait on one stream at once; the `RefCell` is borrowed only
//! inside a poll, never across an await.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::rc::Rc;

use bytes::BytesMut;
use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;

pub type SharedStream = Rc<RefCell<TcpStream>>;

/// Smallest read; also what an idle connection's buffer shrinks back to.
const READ_MIN: usize = 256;
/// Largest read (and the most we zero beforehand).
const READ_MAX: usize = 64 * 1024;

/// How much to read next on one connection. It doubles when a read fills
/// the space offered (a busy connection) and halves when reads come back
/// small, so a busy connection reads in large chunks while an idle one
/// holds no buffer at all (see [`release_if_idle`]).
#[derive(Debug, Clone, Copy)]
pub struct ReadHint(usize);

impl Default for ReadHint {
    fn default() -> Self {
        ReadHint(READ_MIN * 2)
    }
}

/// Reads what is available into `buf`'s spare capacity; `Ok(0)` at EOF.
///
/// Cancel-safe: if the future is dropped before the read completes, `buf`
/// is left as it was (a park request interrupts reads this way).
pub async fn read_into(
    stream: &SharedStream,
    buf: &mut BytesMut,
    hint: &mut ReadHint,
) -> io::Result<usize> {
    let want = hint.0;
    if buf.capacity() - buf.len() < want / 2 {
        buf.reserve(want);
    }
    let start = buf.len();
    let end = buf.capacity().min(start + want.max(READ_MIN));
    // Zeroing the space keeps this free of unsafe; it is a memset of at
    // most `want` bytes next to a syscall. The guard cuts the zeroes off
    // again however this future ends.
    let mut fill = Filled { buf, keep: start };
    fill.buf.resize(end, 0);
    let result =
        poll_fn(|cx| Pin::new(&mut *stream.borrow_mut()).poll_read(cx, &mut fill.buf[start..]))
            .await;
    let n = *result.as_ref().unwrap_or(&0);
    fill.keep = start + n;
    drop(fill);
    if n == end - start {
        hint.0 = (hint.0 * 2).min(READ_MAX);
    } else if n < hint.0 / 4 {
        hint.0 = (hint.0 / 2).max(READ_MIN);
    }
    result
}

/// Truncates a read buffer to the bytes actually read when dropped.
struct Filled<'a> {
    buf: &'a mut BytesMut,
    keep: usize,
}

impl Drop for Filled<'_> {
    fn drop(&mut self) {
        self.buf.truncate(self.keep);
    }
}

/// Drops an empty buffer's memory when reads have been small: an idle
/// connection then costs no read buffer (the next read allocates one).
/// Strings kept from decoded packets are copied out by the broker core, so
/// nothing long-lived pins the old allocation.
pub fn release_if_idle(buf: &mut BytesMut, hint: &ReadHint) {
    if buf.is_empty() && buf.capacity() > 0 && hint.0 <= READ_MIN * 2 {
        *buf = BytesMut::new();
    }
}

/// Writes all of `data`.
pub async fn write_all(stream: &SharedStream, data: &[u8]) -> io::Result<()> {
    let mut off = 0;
    while off < data.len() {
        let n =
            poll_fn(|cx| Pin::new(&mut *stream.borrow_mut()).poll_write(cx, &data[off..])).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        off += n;
    }
    Ok(())
}

/// Shuts both directions down, which also wakes a pending read with EOF.
pub fn shutdown(stream: &SharedStream) {
    let fd = stream.borrow().as_raw_fd();
    // SAFETY: shutdown on an fd the stream owns; it stays open until drop.
    unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
}
