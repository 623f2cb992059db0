//! The pool client against a scripted loopback HTTP server: paths, bodies, auth, error
//! handling and retries.

use ncpc::identity::Identity;
use ncpc::pool::client::{ClientError, PoolClient, with_retries};
use ncpc::pool::protocol::*;
use serde_json::json;
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request the server saw: method, path, JSON body (Null when empty).
type Seen = Arc<Mutex<Vec<(String, String, serde_json::Value)>>>;

/// Serve `answers` (status, body) in order, one per connection, recording requests.
fn serve(answers: Vec<(u16, String)>) -> (String, Seen) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        for (status, body) in answers {
            let Ok((mut stream, _)) = listener.accept() else {
                return;
            };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let mut len = 0usize;
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).map_or(true, |n| n == 0) || h == "\r\n" {
                    break;
                }
                let lower = h.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
            }
            let mut buf = vec![0; len];
            reader.read_exact(&mut buf).unwrap();
            let value = serde_json::from_slice(&buf).unwrap_or(serde_json::Value::Null);
            let mut parts = line.split_whitespace();
            let method = parts.next().unwrap_or("").to_string();
            let path = parts.next().unwrap_or("").to_string();
            log.lock().unwrap().push((method, path, value));
            let head = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(body.as_bytes());
        }
    });
    (format!("http://{addr}"), seen)
}

fn client(url: &str) -> PoolClient {
    let id = Identity::from_secret("//Alice", "test").unwrap();
    PoolClient::new(url, id)
        .unwrap()
        .with_clock(|| 1_700_000_000)
}

#[test]
fn a_mining_cycle_sends_what_amm_sends() {
    let program = "[[100,1,1],[100,2,0],[2,1,2,3],[453,3]]";
    let (url, seen) = serve(vec![
        (200, json!({"status": "registered"}).to_string()),
        (200, "{}".into()),
        (
            200,
            json!({"batch_id": "b-1", "component_type": "loss",
                   "functions": [{"id": 3, "function": program}]})
            .to_string(),
        ),
        (200, json!({"accepted": true}).to_string()),
        (200, json!({"balance": 1.5}).to_string()),
    ]);
    // A trailing /api/v1 on the URL is accepted.
    let c = client(&format!("{url}/api/v1/"));
    let addr = c.address();
    c.register().unwrap();
    c.reset_active().unwrap();
    let batch = c.request_task(TaskType::Evaluate).unwrap();
    assert_eq!(batch.batch_id, json!("b-1"));
    assert_eq!(batch.functions[0].program().unwrap().instrs.len(), 4);
    let ack = c
        .submit_evaluation(
            "b-1",
            vec![Evaluation {
                function_id: json!(3),
                score: wire_score(f64::NEG_INFINITY),
                criteria: Criteria {
                    accuracy: 0.1,
                    stability: 0.0,
                    efficiency: 1.0,
                },
            }],
        )
        .unwrap();
    assert_eq!(ack["accepted"], true);
    assert_eq!(c.balance().unwrap()["balance"], 1.5);

    let seen = seen.lock().unwrap();
    let paths: Vec<_> = seen.iter().map(|(m, p, _)| format!("{m} {p}")).collect();
    assert_eq!(
        paths,
        [
            "POST /api/v1/miners/register".to_string(),
            format!("POST /api/v1/tasks/{addr}/reset_active"),
            format!("POST /api/v1/tasks/{addr}/request"),
            format!("POST /api/v1/tasks/{addr}/b-1/submit_evaluation"),
            format!("GET /api/v1/miners/{addr}/balance"),
        ]
    );
    for (_, _, body) in seen.iter().take(4) {
        let auth: Auth = serde_json::from_value(body.clone()).unwrap();
        assert_eq!(auth.message, "auth:1700000000");
        auth.verify(1_700_000_000, 60).unwrap();
    }
    assert_eq!(seen[2].2["task_type"], "evaluate");
    assert_eq!(seen[3].2["batch_id"], "b-1");
    assert_eq!(seen[3].2["evaluations"][0]["score"], -99999.0);
}

#[test]
fn pool_errors_are_typed_and_name_the_url() {
    let (url, _) = serve(vec![
        (400, r#"{"detail":"Miner already has active task"}"#.into()),
        (400, r#"{"detail":"Miner already registered"}"#.into()),
        (404, r#"{"detail":"no such batch"}"#.into()),
        (200, "not json".into()),
        (200, json!({"functions": "nope"}).to_string()),
    ]);
    let c = client(&url);
    let e = c.request_task(TaskType::Evolve).unwrap_err();
    assert!(matches!(e, ClientError::ActiveTask { .. }), "{e}");
    assert!(!e.is_transient());
    c.register().expect("re-registering is not an error");
    let e = c.submit_evaluation("x", vec![]).unwrap_err();
    assert!(matches!(e, ClientError::Status { status: 404, .. }), "{e}");
    assert!(e.to_string().contains("/api/v1/tasks/") && e.to_string().contains("no such batch"));
    let e = c.reset_active().unwrap_err();
    assert!(matches!(e, ClientError::Decode { .. }), "{e}");
    assert!(e.to_string().contains("not json"));
    let e = c.request_task(TaskType::Evolve).unwrap_err();
    assert!(matches!(e, ClientError::Decode { .. }), "{e}");
}

#[test]
fn transient_failures_are_retried_with_backoff_and_others_are_not() {
    let (url, seen) = serve(vec![
        (503, "busy".into()),
        (500, "oops".into()),
        (200, "{}".into()),
        (403, "no".into()),
    ]);
    let c = client(&url);
    with_retries(3, Duration::from_millis(1), || c.reset_active()).unwrap();
    assert_eq!(seen.lock().unwrap().len(), 3);
    let e = with_retries(3, Duration::from_millis(1), || c.reset_active()).unwrap_err();
    assert!(matches!(e, ClientError::Status { status: 403, .. }));
    assert_eq!(seen.lock().unwrap().len(), 4);
}

#[test]
fn an_unreachable_pool_is_a_transport_error() {
    // Bind then drop a listener so the port is (very likely) closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let c = client(&format!("http://127.0.0.1:{port}"));
    let e = with_retries(2, Duration::from_millis(1), || c.miner_info()).unwrap_err();
    assert!(matches!(e, ClientError::Transport { .. }), "{e}");
    assert!(e.is_transient());
    assert!(
        e.to_string()
            .contains(&format!("127.0.0.1:{port}/api/v1/miners/"))
    );
}
