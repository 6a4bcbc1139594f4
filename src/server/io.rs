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

/// Smallest free space we read into; grows as packets need.
const READ_CHUNK: usize = 4096;
/// Most we read in one call (and zero beforehand).
const READ_MAX: usize = 64 * 1024;

/// Reads what is available into `buf`'s spare capacity; `Ok(0)` at EOF.
pub async fn read_into(stream: &SharedStream, buf: &mut BytesMut) -> io::Result<usize> {
    if buf.capacity() - buf.len() < READ_CHUNK {
        buf.reserve(READ_CHUNK);
    }
    let start = buf.len();
    // Zeroing the spare space keeps this free of unsafe; it is a memset of a
    // few KiB next to a syscall.
    let end = buf.capacity().min(start + READ_MAX);
    buf.resize(end, 0);
    let result =
        poll_fn(|cx| Pin::new(&mut *stream.borrow_mut()).poll_read(cx, &mut buf[start..])).await;
    let n = *result.as_ref().unwrap_or(&0);
    buf.truncate(start + n);
    result
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
