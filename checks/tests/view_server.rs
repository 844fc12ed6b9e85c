//! The viewer's HTTP server, without a browser: every route answers with the right status
//! and content type over a raw HTTP/1.1 exchange, bad traces are rejected with a clear
//! message, and non-loopback addresses are refused.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use petrel_checks::view::{serve, synthetic_trace, validate};

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn http(addr: SocketAddr, method: &str, target: &str, host: &str) -> Reply {
    let mut s = TcpStream::connect(addr).expect("connect to viewer");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nUser-Agent: petrel-test\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read reply");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("reply has a header block");
    let head = String::from_utf8(raw[..split].to_vec()).expect("ASCII headers");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let mut parts = status_line.splitn(3, ' ');
    assert!(
        parts.next().unwrap().starts_with("HTTP/1."),
        "{status_line}"
    );
    let status = parts.next().unwrap().parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

fn get(addr: SocketAddr, target: &str) -> Reply {
    http(addr, "GET", target, &addr.to_string())
}

#[test]
fn serves_every_route_with_its_content_type() {
    let trace = synthetic_trace(25, 4, None);
    let server = serve(
        trace.clone(),
        "127.0.0.1:0".parse().unwrap(),
        Some("http://127.0.0.1:3001".into()),
    )
    .expect("serve");
    let addr = server.addr();
    assert_ne!(addr.port(), 0, "bound to a real port");
    assert_eq!(server.url(), format!("http://{addr}/"));

    let page = get(addr, "/");
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("Content-Type"),
        Some("text/html; charset=utf-8")
    );
    let html = String::from_utf8(page.body).unwrap();
    assert!(html.contains("<script src=\"/viewer.js\"></script>"));
    assert!(html.contains("href=\"/viewer.css\""));
    assert!(
        html.contains("dup-restart-in-prepare"),
        "trace inlined into the page"
    );
    assert!(
        html.contains("http://127.0.0.1:3001"),
        "explorer base passed to the page"
    );
    assert!(!html.contains("{{PETREL_"), "all placeholders substituted");

    let js = get(addr, "/viewer.js");
    assert_eq!(js.status, 200);
    assert_eq!(
        js.header("Content-Type"),
        Some("text/javascript; charset=utf-8")
    );
    assert!(String::from_utf8(js.body)
        .unwrap()
        .contains("__petrelRenderMs"));

    let css = get(addr, "/viewer.css");
    assert_eq!(css.status, 200);
    assert_eq!(css.header("Content-Type"), Some("text/css; charset=utf-8"));
    assert!(!css.body.is_empty());

    let json = get(addr, "/trace.json");
    assert_eq!(json.status, 200);
    assert_eq!(
        json.header("Content-Type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(json.header("Content-Disposition"), None);
    assert_eq!(
        json.header("Content-Length"),
        Some(trace.len().to_string().as_str())
    );
    assert!(
        json.body == trace.as_bytes(),
        "/trace.json serves the trace byte for byte"
    );

    let dl = get(addr, "/trace.json?download=1");
    assert_eq!(dl.status, 200);
    let cd = dl.header("Content-Disposition").expect("attachment header");
    assert!(cd.starts_with("attachment;"), "{cd}");
    assert!(cd.contains(".trace.json"), "{cd}");

    let head = http(addr, "HEAD", "/viewer.css", &addr.to_string());
    assert_eq!(head.status, 200);

    assert_eq!(get(addr, "/nope").status, 404);
    assert_eq!(http(addr, "POST", "/", &addr.to_string()).status, 405);
    // DNS-rebinding guard: a foreign Host header is refused.
    assert_eq!(
        http(addr, "GET", "/trace.json", "evil.example:80").status,
        403
    );
    assert_eq!(
        http(addr, "GET", "/", &format!("localhost:{}", addr.port())).status,
        200
    );

    server.stop();
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_millis(500))
            .map(|mut s| {
                // A listener that is gone either refuses or closes without answering.
                let _ = write!(s, "GET / HTTP/1.1\r\nHost: {addr}\r\n\r\n");
                let mut buf = [0u8; 1];
                s.set_read_timeout(Some(Duration::from_millis(500))).ok();
                !matches!(s.read(&mut buf), Ok(1))
            })
            .unwrap_or(true),
        "server stopped"
    );
}

#[test]
fn serves_on_ipv6_loopback_when_available() {
    let addr: SocketAddr = "[::1]:0".parse().unwrap();
    // Some sandboxes have no IPv6 at all; only a loopback refusal would be a bug here.
    match serve(synthetic_trace(3, 2, None), addr, None) {
        Ok(server) => {
            let r = get(server.addr(), "/");
            assert_eq!(r.status, 200);
            server.stop();
        }
        Err(e) => assert!(!e.contains("loopback"), "{e}"),
    }
}

#[test]
fn refuses_non_loopback_addresses() {
    for addr in ["0.0.0.0:0", "192.168.1.10:8080", "[::]:0", "10.0.0.1:0"] {
        let err = match serve(synthetic_trace(3, 2, None), addr.parse().unwrap(), None) {
            Ok(_) => panic!("{addr} must be refused"),
            Err(e) => e,
        };
        assert!(err.contains("loopback"), "{addr}: {err}");
    }
}

#[test]
fn validate_rejects_bad_input_clearly() {
    let good = synthetic_trace(12, 3, Some(5));
    validate(&good).expect("synthetic trace is valid");

    let err = validate("this is not json").unwrap_err();
    assert!(err.contains("not valid JSON"), "{err}");

    let err = validate("[1,2,3]").unwrap_err();
    assert!(err.contains("top level must be a JSON object"), "{err}");

    let err = validate(r#"{"schema":"petrel-trace/2"}"#).unwrap_err();
    assert!(
        err.contains(r#"schema is "petrel-trace/2", expected "petrel-trace/1""#),
        "{err}"
    );

    let mutate = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut v: serde_json::Value = serde_json::from_str(&good).unwrap();
        f(&mut v);
        validate(&v.to_string()).unwrap_err()
    };
    let err = mutate(&|v| v["steps"][3]["actor"] = 9.into());
    assert!(
        err.contains("steps[3].actor") && err.contains("3 actors"),
        "{err}"
    );
    let err = mutate(&|v| v["steps"][0]["kind"] = "teleport".into());
    assert!(
        err.contains("steps[0]: unknown variant `teleport`") && err.contains("`deliver`"),
        "{err}"
    );
    let err = mutate(&|v| v["steps"][2]["index"] = 7.into());
    assert!(err.contains("steps[2].index"), "{err}");
    let err = mutate(&|v| v["loop_start"] = 99.into());
    assert!(err.contains("loop_start"), "{err}");
    let err = mutate(&|v| {
        v["initial"]["actors"].as_array_mut().unwrap().pop();
    });
    assert!(err.contains("initial.actors"), "{err}");
    let err = mutate(&|v| {
        v.as_object_mut().unwrap().remove("property");
    });
    assert!(err.contains("missing field `property`"), "{err}");

    // `serve` validates before binding.
    let err = match serve("{}".into(), "127.0.0.1:0".parse().unwrap(), None) {
        Ok(_) => panic!("garbage must not be served"),
        Err(e) => e,
    };
    assert!(err.contains("missing field `schema`"), "{err}");
}

#[test]
fn synthetic_traces_scale_and_are_valid() {
    let big = synthetic_trace(1000, 10, None);
    validate(&big).unwrap();
    let v: serde_json::Value = serde_json::from_str(&big).unwrap();
    assert_eq!(v["steps"].as_array().unwrap().len(), 1000);
    assert_eq!(v["actors"].as_array().unwrap().len(), 10);
}
