//! The devnet's ports: each one asked for is checked free before anything starts, and 0 takes any
//! free one, so a run never fails half-way on a port some other program holds.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};

use crate::{Error, Result};

/// The loopback ports of one devnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ports {
    /// anvil's JSON-RPC.
    pub(crate) rpc: u16,
    /// `morpheus-router`.
    pub(crate) router: u16,
    /// `morpheus-worker`.
    pub(crate) worker: u16,
    /// The gateway.
    pub(crate) gateway: u16,
}

/// The ports, and the gateway's socket already bound: the gateway runs in this process, so it
/// keeps the socket the check took instead of binding again.
#[derive(Debug)]
pub(crate) struct Reserved {
    pub(crate) ports: Ports,
    pub(crate) gateway: TcpListener,
}

/// Resolves `asked` (flag name, port; 0 for any free one): every port given is tried on
/// 127.0.0.1 and all the ones in use are named in one error. The other services' sockets are
/// closed again before they start (each child binds its own), which leaves a moment in which
/// another program could take a port picked for 0; nothing else on a developer's machine binds
/// random ports at that rate.
pub(crate) fn reserve(rpc: u16, router: u16, worker: u16, gateway: u16) -> Result<Reserved> {
    let asked = [
        ("--rpc-port", rpc),
        ("--router-port", router),
        ("--worker-port", worker),
        ("--gateway-port", gateway),
    ];
    for (i, (flag, port)) in asked.iter().enumerate() {
        if let Some((other, _)) = asked[..i].iter().find(|(_, p)| *p == *port && *port != 0) {
            return Err(Error::Config(format!(
                "{flag} and {other} are both {port}: each service needs its own port"
            )));
        }
    }
    // Every socket stays open until all are bound, so two picks for 0 cannot be the same port.
    let mut held = Vec::with_capacity(asked.len());
    let mut taken = Vec::new();
    for (flag, port) in asked {
        match TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))) {
            Ok(listener) => held.push(listener),
            Err(e) => taken.push(format!("{port} ({flag}: {e})")),
        }
    }
    if !taken.is_empty() {
        return Err(Error::PortsInUse(taken.join(", ")));
    }
    let port = |l: &TcpListener| {
        l.local_addr()
            .map(|a| a.port())
            .map_err(|e| Error::io("127.0.0.1", e))
    };
    let ports = Ports {
        rpc: port(&held[0])?,
        router: port(&held[1])?,
        worker: port(&held[2])?,
        gateway: port(&held[3])?,
    };
    let gateway = held
        .pop()
        .ok_or_else(|| Error::Devnet("no gateway socket".into()))?;
    Ok(Reserved { ports, gateway })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_picks_distinct_free_ports() {
        let r = reserve(0, 0, 0, 0).expect("free ports");
        let p = r.ports;
        let all = [p.rpc, p.router, p.worker, p.gateway];
        assert!(all.iter().all(|&x| x != 0), "{p:?}");
        for (i, a) in all.iter().enumerate() {
            assert!(!all[i + 1..].contains(a), "port {a} picked twice: {p:?}");
        }
        assert_eq!(r.gateway.local_addr().expect("addr").port(), p.gateway);
    }

    #[test]
    fn a_port_in_use_is_named_with_its_flag() {
        let busy = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = busy.local_addr().expect("addr").port();
        match reserve(0, 0, port, 0) {
            Err(Error::PortsInUse(list)) => {
                assert!(list.contains(&format!("{port} (--worker-port")), "{list}");
                assert!(!list.contains("--rpc-port"), "{list}");
            }
            other => panic!("expected PortsInUse naming {port}, got {other:?}"),
        }
    }

    #[test]
    fn the_same_port_twice_is_refused() {
        match reserve(1234, 0, 1234, 0) {
            Err(Error::Config(m)) => assert!(m.contains("--worker-port and --rpc-port"), "{m}"),
            other => panic!("expected a config error, got {other:?}"),
        }
    }
}
