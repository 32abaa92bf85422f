use std::io::{Read, Write};
use std::net::TcpStream;

use super::*;
use crate::report::model::Target;

fn get(addr: SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn serves_the_published_report_and_nothing_else() {
    let server = MetricsServer::start("127.0.0.1:0".parse().unwrap(), 5).unwrap();
    let addr = server.addr();
    let r = Report::of_sites(Target { pid: 42, command: "app".into(), ..Target::default() }, Vec::new(), 0);
    server.publish(&r);
    let answer = get(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: application/openmetrics-text\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.contains("Content-Type: application/openmetrics-text; version=1.0.0"), "{answer}");
    assert!(answer.contains("leaktrace_target_info{pid=\"42\",command=\"app\",state=\"running\"} 1\n"), "{answer}");
    assert!(answer.ends_with("# EOF\n"));
    assert!(get(addr, "GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
    assert!(get(addr, "POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
    let taken = MetricsServer::start(addr, 5).err().expect("the port is taken");
    assert!(taken.to_string().starts_with(&format!("--metrics {addr}: cannot listen there")), "{taken}");
}

#[test]
fn before_any_report_a_scrape_is_told_to_come_back() {
    let server = MetricsServer::start("127.0.0.1:0".parse().unwrap(), 5).unwrap();
    let answer = get(server.addr(), "GET /metrics HTTP/1.0\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
}
