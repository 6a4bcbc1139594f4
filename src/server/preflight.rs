//! Checks made before any shard starts, so that a broker that cannot run
//! says why instead of looking alive with dead shards.

use super::ServerError;

/// glommio refuses to start an executor below this RLIMIT_MEMLOCK.
const GLOMMIO_MIN_MEMLOCK: u64 = 512 * 1024;
/// glommio registers each executor's io memory with three rings.
const RINGS_PER_SHARD: u64 = 3;

/// io_uring can be set up, and locked memory suffices for `shards`.
pub fn check(shards: usize, io_memory: usize) -> Result<(), ServerError> {
    check_io_uring()?;
    let io_memory = (io_memory.max(64 << 10) as u64).div_ceil(4096) * 4096;
    let needed = GLOMMIO_MIN_MEMLOCK.max(shards as u64 * RINGS_PER_SHARD * io_memory);
    let limit = memlock_limit();
    if limit < needed {
        return Err(ServerError::Preflight(format!(
            "RLIMIT_MEMLOCK is {} KiB but {shards} shard(s) with --io-memory {} KiB need {} KiB: \
             raise it (`ulimit -l {}`, or LimitMEMLOCK= in a systemd unit) or lower --shards / --io-memory",
            limit / 1024,
            io_memory / 1024,
            needed / 1024,
            needed / 1024
        )));
    }
    Ok(())
}

fn memlock_limit() -> u64 {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut rl) };
    if rc != 0 {
        return 0;
    }
    rl.rlim_cur
}

fn check_io_uring() -> Result<(), ServerError> {
    // struct io_uring_params is 120 bytes; zeroed asks for defaults.
    let mut params = [0u8; 120];
    // SAFETY: io_uring_setup reads and writes the params buffer we own, and
    // returns a new fd that we close below.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 4u32, params.as_mut_ptr()) };
    if fd < 0 {
        let err = std::io::Error::last_os_error();
        return Err(ServerError::Preflight(format!(
            "io_uring is not available ({err}): ringmq needs Linux 5.8 or later with io_uring enabled \
             (sysctl kernel.io_uring_disabled=0; containers: a seccomp profile that allows io_uring_*)"
        )));
    }
    // SAFETY: fd was just returned by io_uring_setup and is ours.
    unsafe { libc::close(fd as i32) };
    Ok(())
}

/// Raises the open-file soft limit to the hard limit and returns it: each
/// connection costs one file descriptor.
pub fn raise_nofile() -> u64 {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: get/setrlimit on a struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) != 0 {
            return 0;
        }
        if rl.rlim_cur < rl.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: rl.rlim_max,
                rlim_max: rl.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return rl.rlim_max;
            }
        }
    }
    rl.rlim_cur
}
