//! libuv's handle functions, for where a descriptor's handle was created:
//! one declarative table, read by the kernel program (which arguments to
//! take) and by userspace (which symbols to probe, what each call means).
//!
//! An event-loop program creates its handle where the user's code runs
//! (`uv_tcp_init` in a request handler) and libuv makes the descriptor
//! later, from the loop (a deferred connect, an accept): the handle's
//! creation stack names the owner that the descriptor's own stack does not.

/// A probed libuv function. Also the value of a probe's attach cookie.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UvFn {
    TcpInit = 1,
    TcpInitEx = 2,
    UdpInit = 3,
    UdpInitEx = 4,
    PipeInit = 5,
    TtyInit = 6,
    PollInit = 7,
    PollInitSocket = 8,
    FsEventInit = 9,
    SignalInit = 10,
    TimerInit = 11,
    TcpBind = 12,
    TcpConnect = 13,
    UdpBind = 14,
    UdpConnect = 15,
    UdpSend = 16,
    UdpTrySend = 17,
    UdpRecvStart = 18,
    PipeBind = 19,
    PipeBind2 = 20,
    PipeConnect = 21,
    PipeConnect2 = 22,
    TcpOpen = 23,
    UdpOpen = 24,
    PipeOpen = 25,
    Accept = 26,
    Close = 27,
}

/// What kind of handle an init function makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UvHandle {
    Tcp,
    Udp,
    Pipe,
    Tty,
    Poll,
    FsEvent,
    Signal,
    Timer,
}

/// What a call means; argument numbers count from 0 (the System V registers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// `uv_*_init(loop, handle, ...)`: a handle is created (its stack is
    /// taken); its descriptor is argument `fd` when the caller gives one. A
    /// descriptor made inside the call (`uv_tcp_init_ex`) is the handle's too.
    Init { kind: UvHandle, fd: Option<u8> },
    /// A call that may make the handle's descriptor before it returns (a
    /// bind, a connect, the first send of a UDP handle).
    Within { handle: u8 },
    /// The caller gives the handle an existing descriptor.
    Open { handle: u8, fd: u8 },
    /// `uv_accept(server, client)`: the descriptor the loop accepted for
    /// `server` becomes `client`'s.
    Accept,
    /// `uv_close(handle, cb)`: the handle ends.
    Close,
}

impl UvFn {
    pub const ALL: [UvFn; 27] = [
        Self::TcpInit,
        Self::TcpInitEx,
        Self::UdpInit,
        Self::UdpInitEx,
        Self::PipeInit,
        Self::TtyInit,
        Self::PollInit,
        Self::PollInitSocket,
        Self::FsEventInit,
        Self::SignalInit,
        Self::TimerInit,
        Self::TcpBind,
        Self::TcpConnect,
        Self::UdpBind,
        Self::UdpConnect,
        Self::UdpSend,
        Self::UdpTrySend,
        Self::UdpRecvStart,
        Self::PipeBind,
        Self::PipeBind2,
        Self::PipeConnect,
        Self::PipeConnect2,
        Self::TcpOpen,
        Self::UdpOpen,
        Self::PipeOpen,
        Self::Accept,
        Self::Close,
    ];

    /// A match, not an index into [`Self::ALL`]: the kernel program calls
    /// it, and older verifiers (Linux 6.1, 6.12) lose the bound of an index
    /// the compiler checks through a copy offset by one.
    pub const fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            1 => Self::TcpInit,
            2 => Self::TcpInitEx,
            3 => Self::UdpInit,
            4 => Self::UdpInitEx,
            5 => Self::PipeInit,
            6 => Self::TtyInit,
            7 => Self::PollInit,
            8 => Self::PollInitSocket,
            9 => Self::FsEventInit,
            10 => Self::SignalInit,
            11 => Self::TimerInit,
            12 => Self::TcpBind,
            13 => Self::TcpConnect,
            14 => Self::UdpBind,
            15 => Self::UdpConnect,
            16 => Self::UdpSend,
            17 => Self::UdpTrySend,
            18 => Self::UdpRecvStart,
            19 => Self::PipeBind,
            20 => Self::PipeBind2,
            21 => Self::PipeConnect,
            22 => Self::PipeConnect2,
            23 => Self::TcpOpen,
            24 => Self::UdpOpen,
            25 => Self::PipeOpen,
            26 => Self::Accept,
            27 => Self::Close,
            _ => return None,
        })
    }

    /// The exported symbol, and what a call means.
    pub const fn describe(self) -> (&'static str, Shape) {
        use Shape::*;
        use UvHandle::*;
        const fn init(kind: UvHandle) -> Shape {
            Init { kind, fd: None }
        }
        match self {
            Self::TcpInit => ("uv_tcp_init", init(Tcp)),
            Self::TcpInitEx => ("uv_tcp_init_ex", init(Tcp)),
            Self::UdpInit => ("uv_udp_init", init(Udp)),
            Self::UdpInitEx => ("uv_udp_init_ex", init(Udp)),
            Self::PipeInit => ("uv_pipe_init", init(Pipe)),
            Self::TtyInit => ("uv_tty_init", Init { kind: Tty, fd: Some(2) }),
            Self::PollInit => ("uv_poll_init", Init { kind: Poll, fd: Some(2) }),
            Self::PollInitSocket => ("uv_poll_init_socket", Init { kind: Poll, fd: Some(2) }),
            Self::FsEventInit => ("uv_fs_event_init", init(FsEvent)),
            Self::SignalInit => ("uv_signal_init", init(Signal)),
            Self::TimerInit => ("uv_timer_init", init(Timer)),
            Self::TcpBind => ("uv_tcp_bind", Within { handle: 0 }),
            Self::TcpConnect => ("uv_tcp_connect", Within { handle: 1 }),
            Self::UdpBind => ("uv_udp_bind", Within { handle: 0 }),
            Self::UdpConnect => ("uv_udp_connect", Within { handle: 0 }),
            Self::UdpSend => ("uv_udp_send", Within { handle: 1 }),
            Self::UdpTrySend => ("uv_udp_try_send", Within { handle: 0 }),
            Self::UdpRecvStart => ("uv_udp_recv_start", Within { handle: 0 }),
            Self::PipeBind => ("uv_pipe_bind", Within { handle: 0 }),
            Self::PipeBind2 => ("uv_pipe_bind2", Within { handle: 0 }),
            Self::PipeConnect => ("uv_pipe_connect", Within { handle: 1 }),
            Self::PipeConnect2 => ("uv_pipe_connect2", Within { handle: 1 }),
            Self::TcpOpen => ("uv_tcp_open", Open { handle: 0, fd: 1 }),
            Self::UdpOpen => ("uv_udp_open", Open { handle: 0, fd: 1 }),
            Self::PipeOpen => ("uv_pipe_open", Open { handle: 0, fd: 1 }),
            Self::Accept => ("uv_accept", Accept),
            Self::Close => ("uv_close", Close),
        }
    }

    pub const fn symbol(self) -> &'static str {
        self.describe().0
    }

    pub const fn shape(self) -> Shape {
        self.describe().1
    }
}

/// The `b` field of an init record whose caller gave no descriptor.
pub const NO_FD: u64 = u64::MAX;

/// A probed call other than an init, as its record's `a` and `b` say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UvCall {
    /// `ret`: the caller's return address, which the stack of a descriptor
    /// made inside the call holds.
    Within {
        handle: u64,
        ret: u64,
    },
    Open {
        handle: u64,
        fd: i32,
    },
    Accept {
        server: u64,
        client: u64,
    },
    Close {
        handle: u64,
    },
}

impl UvCall {
    /// None for an init function (its record is an init record).
    pub const fn of(func: UvFn, a: u64, b: u64) -> Option<Self> {
        Some(match func.shape() {
            Shape::Init { .. } => return None,
            Shape::Within { .. } => Self::Within { handle: a, ret: b },
            Shape::Open { .. } => Self::Open { handle: a, fd: b as i32 },
            Shape::Accept => Self::Accept { server: a, client: b },
            Shape::Close => Self::Close { handle: a },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_function_round_trips_and_has_its_own_symbol() {
        for (i, f) in UvFn::ALL.iter().enumerate() {
            assert_eq!(*f as usize, i + 1, "ALL is in discriminant order");
            assert_eq!(UvFn::from_u32(*f as u32), Some(*f));
            assert_eq!(UvFn::ALL.iter().filter(|o| o.symbol() == f.symbol()).count(), 1, "{}", f.symbol());
            assert!(f.symbol().starts_with("uv_"));
        }
        assert_eq!(UvFn::from_u32(0), None);
        assert_eq!(UvFn::from_u32(UvFn::ALL.len() as u32 + 1), None);
    }
}
