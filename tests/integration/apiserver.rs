//! A small Kubernetes API stand-in for the kubectl tests.
//!
//! Why a stand-in: no real API server can run here (no container runtime,
//! no etcd, no network but loopback), and what these tests pin down is what
//! *kubectl sends* when it reads `ksec decrypt` output. So the suite owns a
//! tiny HTTP/1.1 server on 127.0.0.1 that speaks just enough of the API for
//! `kubectl apply` (client- and server-side, `--dry-run=server`) and
//! `kubectl create`:
//!
//! * discovery: `/version` (the machine's kubectl is a version dispatcher and
//!   asks first), `/api`, `/api/v1`, `/apis`;
//! * OpenAPI v3: a root and a minimal `api/v1` document whose PATCH
//!   operations for Secret and ConfigMap declare the `fieldValidation`
//!   parameter, so kubectl validates on the server (it sends
//!   `fieldValidation=Strict`) instead of needing the full schema;
//!   `/openapi/v2` is answered 404;
//! * Secrets and ConfigMaps: GET (404 `Status` when absent), POST (201, the
//!   stored object; 409 when it exists), PATCH (merge and strategic merge
//!   patches, and server-side apply), all honouring `dryRun=All`.
//!
//! Like the real API server it decodes Secret `data` as base64 (refusing
//! what is not, with the real server's message) and folds `stringData` into
//! `data`. Every request is recorded with its body, which is what the tests
//! assert on. Connections are closed after each response; a server lives
//! as long as its handle.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

/// One request as kubectl sent it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: String,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Request {
    /// The body as JSON (kubectl sends JSON for writes).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} {}: body is not JSON ({e}): {}",
                self.method,
                self.path,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// A write (POST, PUT, PATCH, DELETE) rather than a read.
    pub fn is_write(&self) -> bool {
        self.method != "GET"
    }

    pub fn dry_run(&self) -> bool {
        self.query.split('&').any(|p| p == "dryRun=All")
    }
}

#[derive(Default)]
struct State {
    requests: Vec<Request>,
    /// (resource, namespace, name) → stored object.
    objects: BTreeMap<(String, String, String), Value>,
    next_uid: u64,
}

/// A running stand-in. Stops when dropped.
pub struct ApiServer {
    pub port: u16,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl ApiServer {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let accept = {
            let state = Arc::clone(&state);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let state = Arc::clone(&state);
                    std::thread::spawn(move || serve(conn, port, &state));
                }
            })
        };
        ApiServer {
            port,
            state,
            stop,
            accept: Some(accept),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A kubeconfig pointing at this server (no credentials, namespace `default`).
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: standin\n  cluster:\n    server: {}\n\
users:\n- name: tester\n  user: {{}}\ncontexts:\n- name: standin\n  context:\n    cluster: standin\n    user: tester\n    namespace: default\n\
current-context: standin\n",
            self.url()
        )
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().requests.clone()
    }

    /// The write requests (what kubectl sent to change something).
    pub fn writes(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(Request::is_write)
            .collect()
    }

    /// A stored object, if any.
    pub fn object(&self, resource: &str, namespace: &str, name: &str) -> Option<Value> {
        self.state
            .lock()
            .unwrap()
            .objects
            .get(&(resource.into(), namespace.into(), name.into()))
            .cloned()
    }

    pub fn object_count(&self) -> usize {
        self.state.lock().unwrap().objects.len()
    }

    pub fn clear_requests(&self) {
        self.state.lock().unwrap().requests.clear();
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

fn serve(conn: TcpStream, port: u16, state: &Mutex<State>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(conn.try_clone().expect("clone stream"));
    let Some(req) = read_request(&mut reader) else {
        return;
    };
    let (status, body) = {
        let mut st = state.lock().unwrap();
        st.requests.push(req.clone());
        route(&req, port, &mut st)
    };
    let reason = match status {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        415 => "Unsupported Media Type",
        _ => "Unprocessable Entity",
    };
    let bytes = serde_json::to_vec(&body).unwrap();
    let mut conn = conn;
    let _ = write!(
        conn,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        bytes.len()
    );
    let _ = conn.write_all(&bytes);
    let _ = conn.flush();
}

fn read_request(r: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let target = parts.next()?.to_owned();
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), q.to_owned()),
        None => (target, String::new()),
    };
    let mut length = 0usize;
    let mut chunked = false;
    let mut content_type = String::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (name, value) = h.split_once(':')?;
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse().ok()?,
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            "content-type" => content_type = value.to_owned(),
            _ => {}
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).ok()?;
            let n = usize::from_str_radix(size.trim(), 16).ok()?;
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else {
        body.resize(length, 0);
        r.read_exact(&mut body).ok()?;
    }
    Some(Request {
        method,
        path,
        query,
        content_type,
        body,
    })
}

fn status(code: u16, reason: &str, message: &str) -> (u16, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "code": code}),
    )
}

fn kind_of(resource: &str) -> &'static str {
    match resource {
        "secrets" => "Secret",
        _ => "ConfigMap",
    }
}

fn route(req: &Request, port: u16, st: &mut State) -> (u16, Value) {
    let segs: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    match (req.method.as_str(), segs.as_slice()) {
        ("GET", ["version"]) => (
            200,
            json!({"major": "1", "minor": "32", "gitVersion": "v1.32.4", "gitCommit": "standin",
                   "gitTreeState": "clean", "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.23",
                   "compiler": "gc", "platform": "linux/amd64"}),
        ),
        ("GET", ["api"]) => (
            200,
            json!({"kind": "APIVersions", "versions": ["v1"],
                   "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": format!("127.0.0.1:{port}")}]}),
        ),
        ("GET", ["apis"]) => (
            200,
            json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []}),
        ),
        ("GET", ["api", "v1"]) => (200, resource_list()),
        ("GET", ["openapi", "v3"]) => (
            200,
            json!({"paths": {"api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=KSECSTANDIN"}}}),
        ),
        ("GET", ["openapi", "v3", "api", "v1"]) => (200, openapi_v1()),
        (
            _,
            [
                "api",
                "v1",
                "namespaces",
                ns,
                res @ ("secrets" | "configmaps"),
            ],
        ) => match req.method.as_str() {
            "POST" => create(req, st, res, ns),
            _ => status(405, "MethodNotAllowed", "not supported by the stand-in"),
        },
        (
            m,
            [
                "api",
                "v1",
                "namespaces",
                ns,
                res @ ("secrets" | "configmaps"),
                name,
            ],
        ) => {
            let key = ((*res).to_owned(), (*ns).to_owned(), (*name).to_owned());
            match m {
                "GET" => match st.objects.get(&key) {
                    Some(o) => (200, o.clone()),
                    None => not_found(res, name),
                },
                "PATCH" => patch(req, st, key),
                _ => status(405, "MethodNotAllowed", "not supported by the stand-in"),
            }
        }
        _ => status(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ),
    }
}

fn not_found(res: &str, name: &str) -> (u16, Value) {
    status(404, "NotFound", &format!("{res} \"{name}\" not found"))
}

fn resource_list() -> Value {
    let verbs = json!([
        "create", "delete", "get", "list", "patch", "update", "watch"
    ]);
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "v1", "resources": [
        {"name": "secrets", "singularName": "secret", "namespaced": true, "kind": "Secret", "verbs": verbs},
        {"name": "configmaps", "singularName": "configmap", "namespaced": true, "kind": "ConfigMap",
         "shortNames": ["cm"], "verbs": verbs},
    ]})
}

fn openapi_v1() -> Value {
    let op = |kind: &str| {
        json!({"patch": {
            "operationId": format!("patchCoreV1Namespaced{kind}"),
            "x-kubernetes-group-version-kind": {"group": "", "version": "v1", "kind": kind},
            "parameters": [
                {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
                {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
                {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
                {"name": "force", "in": "query", "schema": {"type": "boolean"}}
            ],
            "responses": {"200": {"description": "OK"}}
        }})
    };
    json!({
        "openapi": "3.0.0",
        "info": {"title": "ksec test stand-in", "version": "v1.32.4"},
        "paths": {
            "/api/v1/namespaces/{namespace}/secrets/{name}": op("Secret"),
            "/api/v1/namespaces/{namespace}/configmaps/{name}": op("ConfigMap"),
        },
        "components": {"schemas": {}}
    })
}

/// What the real API server does on write: `data` is base64 (decoded into
/// bytes, so invalid base64 is a 400), `stringData` is merged into `data`
/// and not stored.
fn admit(resource: &str, obj: &mut Value) -> Result<(), (u16, Value)> {
    let kind = kind_of(resource);
    if obj.get("kind").and_then(Value::as_str) != Some(kind) {
        return Err(status(
            400,
            "BadRequest",
            "kind does not match the resource",
        ));
    }
    if resource != "secrets" {
        return Ok(());
    }
    let mut data: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    if let Some(d) = obj.get("data").and_then(Value::as_object) {
        for (k, v) in d {
            let Some(s) = v.as_str() else {
                return Err(status(
                    400,
                    "BadRequest",
                    &format!(
                        "Secret in version \"v1\" cannot be handled as a Secret: json: cannot unmarshal {v} into Go struct field Secret.data of type []uint8"
                    ),
                ));
            };
            // Go's base64 decoding of []byte fields skips \r and \n.
            let compact: String = s.chars().filter(|c| !matches!(c, '\r' | '\n')).collect();
            match B64.decode(compact) {
                Ok(b) => {
                    data.insert(k.clone(), b);
                }
                Err(_) => {
                    return Err(status(
                        400,
                        "BadRequest",
                        &format!(
                            "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data in data.{k}"
                        ),
                    ));
                }
            }
        }
    }
    if let Some(sd) = obj.get("stringData").and_then(Value::as_object) {
        for (k, v) in sd {
            let s = v.as_str().unwrap_or_default();
            data.insert(k.clone(), s.as_bytes().to_vec());
        }
    }
    let map = obj.as_object_mut().unwrap();
    map.remove("stringData");
    if !data.is_empty() {
        map.insert(
            "data".into(),
            Value::Object(
                data.into_iter()
                    .map(|(k, v)| (k, Value::String(B64.encode(v))))
                    .collect(),
            ),
        );
    }
    Ok(())
}

fn create(req: &Request, st: &mut State, resource: &str, ns: &str) -> (u16, Value) {
    let Ok(mut obj) = serde_json::from_slice::<Value>(&req.body) else {
        return status(
            415,
            "UnsupportedMediaType",
            "the stand-in reads JSON bodies",
        );
    };
    if let Err(e) = admit(resource, &mut obj) {
        return e;
    }
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let key = (resource.to_owned(), ns.to_owned(), name.clone());
    if st.objects.contains_key(&key) {
        return status(
            409,
            "AlreadyExists",
            &format!("{resource} \"{name}\" already exists"),
        );
    }
    st.next_uid += 1;
    let meta = obj["metadata"].as_object_mut().unwrap();
    meta.insert("namespace".into(), ns.into());
    meta.insert(
        "uid".into(),
        format!("00000000-0000-0000-0000-{:012}", st.next_uid).into(),
    );
    meta.insert("resourceVersion".into(), st.next_uid.to_string().into());
    meta.insert("creationTimestamp".into(), "2025-01-01T00:00:00Z".into());
    if !req.dry_run() {
        st.objects.insert(key, obj.clone());
    }
    (201, obj)
}

fn patch(req: &Request, st: &mut State, key: (String, String, String)) -> (u16, Value) {
    let Ok(patch) = serde_json::from_slice::<Value>(&req.body) else {
        return status(
            415,
            "UnsupportedMediaType",
            "the stand-in reads JSON bodies",
        );
    };
    let server_side = req.content_type.starts_with("application/apply-patch");
    let mut obj = match st.objects.get(&key) {
        Some(o) => o.clone(),
        None if server_side => {
            let mut o = patch.clone();
            o["metadata"]["namespace"] = key.1.clone().into();
            o
        }
        None => return not_found(&key.0, &key.2),
    };
    if st.objects.contains_key(&key) {
        merge(&mut obj, &patch);
    }
    if let Err(e) = admit(&key.0, &mut obj) {
        return e;
    }
    if !req.dry_run() {
        st.objects.insert(key, obj.clone());
    }
    (200, obj)
}

/// JSON merge patch (RFC 7386); for Secrets and ConfigMaps, whose fields are
/// maps of strings, a strategic merge patch means the same.
fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if k.starts_with('$') {
                    continue;
                }
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}
