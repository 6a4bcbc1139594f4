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

use super::pacer::Pacer;

pub type SharedStream = Rc<RefCell<TcpStream>>;

/// Smallest read; also what an idle connection's buffer shrinks back to.
const READ_MIN: usize = 256;
/// Largest read (and the most we zero beforehand).
const READ_MAX: usize = 64 * 1024;

/// How much to read next on one connection, and when it last read data.
/// The size doubles when a read fills the space offered (a busy
/// connection) and halves when reads come back small, so a busy connection
/// reads in large chunks while an idle one holds no buffer at all (see
/// [`release_if_idle`]). The stamp drives pacing (see `pacer`).
#[derive(Debug, Clone, Copy)]
pub struct ReadHint {
    size: u32,
    /// [`Pacer::stamp`] of the last read that returned data without filling
    /// the buffer; 0 when the next read should not wait.
    last_data: u32,
}

impl Default for ReadHint {
    fn default() -> Self {
        ReadHint {
            size: (READ_MIN * 2) as u32,
            last_data: 0,
        }
    }
}

impl ReadHint {
    /// The next read does not wait for the tick.
    pub fn unpace(&mut self) {
        self.last_data = 0;
    }
}

/// Reads what is available into `buf`'s spare capacity; `Ok(0)` at EOF.
///
/// A connection that read data less than a tick ago first waits for the
/// shard's next tick, then reads with a plain `recv` (expecting data: no
/// io_uring poll is armed unless there is none).
///
/// Cancel-safe: if the future is dropped before the read completes, `buf`
/// is left as it was (a park request interrupts reads this way).
pub async fn read_into(
    stream: &SharedStream,
    buf: &mut BytesMut,
    hint: &mut ReadHint,
    pacer: &Pacer,
) -> io::Result<usize> {
    let paced = pacer.is_busy(hint.last_data);
    if paced {
        pacer.next_tick().await;
    }
    let want = hint.size as usize;
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
    let direct = if paced {
        try_recv(stream, &mut fill.buf[start..])
    } else {
        None
    };
    let result = match direct {
        Some(r) => r,
        None => {
            poll_fn(|cx| Pin::new(&mut *stream.borrow_mut()).poll_read(cx, &mut fill.buf[start..]))
                .await
        }
    };
    let n = *result.as_ref().unwrap_or(&0);
    fill.keep = start + n;
    drop(fill);
    let size = hint.size as usize;
    if n == end - start {
        hint.size = (size * 2).min(READ_MAX) as u32;
        // Saturated: read again at once, waiting would cap throughput.
        hint.last_data = 0;
    } else {
        if n < size / 4 {
            hint.size = (size / 2).max(READ_MIN) as u32;
        }
        hint.last_data = if n > 0 { pacer.stamp() } else { 0 };
    }
    result
}

/// One non-blocking `recv`; `None` if nothing is there yet.
fn try_recv(stream: &SharedStream, buf: &mut [u8]) -> Option<io::Result<usize>> {
    let fd = stream.borrow().as_raw_fd();
    // SAFETY: buf is valid for buf.len() bytes; fd is open while the stream
    // lives.
    let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
    if n >= 0 {
        return Some(Ok(n as usize));
    }
    let e = io::Error::last_os_error();
    match e.kind() {
        io::ErrorKind::WouldBlock => None,
        io::ErrorKind::Interrupted => None,
        _ => Some(Err(e)),
    }
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
    if buf.is_empty() && buf.capacity() > 0 && hint.size as usize <= READ_MIN * 2 {
        *buf = BytesMut::new();
    }
}

/// Writes all of `data`.
pub async fn write_all(stream: &SharedStream, data: &[u8]) -> io::Result<()> {
    write_all_within(stream, data, None).await
}

/// Writes all of `data`, failing with `TimedOut` when the peer takes
/// nothing for `stall` (a client that does not read): a slow reader that
/// makes progress is never cut off.
pub async fn write_all_within(
    stream: &SharedStream,
    data: &[u8],
    stall: Option<std::time::Duration>,
) -> io::Result<()> {
    let mut off = 0;
    while off < data.len() {
        let mut write = std::pin::pin!(poll_fn(|cx| {
            Pin::new(&mut *stream.borrow_mut()).poll_write(cx, &data[off..])
        }));
        // A write that goes through at once (the usual case) arms no timer.
        let n = match futures_lite::future::poll_once(write.as_mut()).await {
            Some(done) => done?,
            None => match stall {
                None => write.await?,
                Some(limit) => glommio::timer::timeout(limit, async { Ok(write.await) })
                    .await
                    .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))?,
            },
        };
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

/// Ends our side of the stream after the last bytes (a FIN), leaving the
/// read side open for [`drain_for`].
pub fn shutdown_write(stream: &SharedStream) {
    let fd = stream.borrow().as_raw_fd();
    // SAFETY: shutdown on an fd the stream owns; it stays open until drop.
    unsafe { libc::shutdown(fd, libc::SHUT_WR) };
}

/// A lingering close: reads and discards what the client still sends until
/// it closes too, or `within` passes. Closing a socket with unread data
/// makes the kernel send a reset, which can destroy the last packet we
/// wrote (a DISCONNECT with its reason code) before the client reads it.
pub async fn drain_for(stream: &SharedStream, within: std::time::Duration) {
    let deadline = std::time::Instant::now() + within;
    let mut scratch = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return;
        }
        let read = futures_lite::future::or(
            async {
                poll_fn(|cx| {
                    let mut s = stream.borrow_mut();
                    Pin::new(&mut *s).poll_read(cx, &mut scratch)
                })
                .await
                .ok()
            },
            async {
                glommio::timer::sleep(left).await;
                None
            },
        )
        .await;
        if !matches!(read, Some(n) if n > 0) {
            return;
        }
    }
}
