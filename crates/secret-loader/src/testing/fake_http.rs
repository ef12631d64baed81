//! A loopback HTTP endpoint whose answers a test writes by hand: for what the emulator won't
//! do (a body longer than it says, a batch API that is denied while single reads are slow)
//! and for counting how many requests a client keeps in flight.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// One request as the endpoint read it.
#[derive(Debug, Clone)]
pub struct FakeRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The request target, e.g. `/bucket/key`.
    pub path: String,
    /// Header names (lower-case) and values.
    pub headers: Vec<(String, String)>,
    /// The body (by `Content-Length`).
    pub body: Vec<u8>,
}

impl FakeRequest {
    /// The value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Answers a request by writing a whole HTTP response (status line, headers, body) to the
/// stream; it may also stall or stop half-way.
pub type Respond = dyn Fn(&FakeRequest, &mut TcpStream) + Send + Sync;

/// The endpoint: one thread per connection, one request per connection.
pub struct FakeHttp {
    endpoint: String,
    stop: Arc<AtomicBool>,
    in_flight: Arc<AtomicUsize>,
    most_in_flight: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
}

impl FakeHttp {
    /// Starts answering on 127.0.0.1 with `respond`.
    pub fn start(respond: impl Fn(&FakeRequest, &mut TcpStream) + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let (in_flight, most_in_flight, requests) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
        );
        let respond: Arc<Respond> = Arc::new(respond);
        {
            let (stop, in_flight, most, requests) = (
                stop.clone(),
                in_flight.clone(),
                most_in_flight.clone(),
                requests.clone(),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Ok((stream, _)) = listener.accept() else {
                        std::thread::sleep(Duration::from_millis(2));
                        continue;
                    };
                    let (respond, in_flight, most, requests) = (
                        respond.clone(),
                        in_flight.clone(),
                        most.clone(),
                        requests.clone(),
                    );
                    std::thread::spawn(move || {
                        let _ = stream.set_nonblocking(false);
                        let Some((request, mut stream)) = read_request(stream) else {
                            return;
                        };
                        requests.fetch_add(1, Ordering::SeqCst);
                        let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        respond(&request, &mut stream);
                        in_flight.fetch_sub(1, Ordering::SeqCst);
                        let _ = stream.flush();
                    });
                }
            });
        }
        Self {
            endpoint,
            stop,
            in_flight,
            most_in_flight,
            requests,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The most requests that were being answered at once.
    pub fn most_in_flight(&self) -> usize {
        self.most_in_flight.load(Ordering::SeqCst)
    }

    /// Requests read so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Requests being answered now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }
}

impl Drop for FakeHttp {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Writes a complete response with `Connection: close`.
pub fn write_response(stream: &mut TcpStream, status: u16, headers: &[(&str, &str)], body: &[u8]) {
    let mut head = format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
}

fn read_request(stream: TcpStream) -> Option<(FakeRequest, TcpStream)> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_owned(), parts.next()?.to_owned());
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let length = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0usize);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let request = FakeRequest {
        method,
        path,
        headers,
        body,
    };
    Some((request, reader.into_inner()))
}
