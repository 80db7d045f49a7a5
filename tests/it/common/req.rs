//! One HTTP request, built once and sent through the in-process app ([`call`]) or over a
//! socket as raw bytes ([`Req::wire`], with `server::http_bytes`).

use actix_http::Request;
use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::Method;
use actix_web::test::TestRequest;
use serde_json::Value;

use super::{send, Keys, Reply};

/// One HTTP request, built once and sent through the in-process app or over a socket.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: Method,
    pub uri: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Req {
    /// `method` on `uri` (path and query), no headers, no body.
    pub fn new(method: Method, uri: impl Into<String>) -> Self {
        Req {
            method,
            uri: uri.into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A GET.
    pub fn get(uri: impl Into<String>) -> Self {
        Self::new(Method::GET, uri)
    }

    /// A POST.
    pub fn post(uri: impl Into<String>) -> Self {
        Self::new(Method::POST, uri)
    }

    /// A PATCH.
    pub fn patch(uri: impl Into<String>) -> Self {
        Self::new(Method::PATCH, uri)
    }

    /// One more header, after the others (a repeated name is sent twice).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// `API_KEY_ID` alone, as apps built on Cotter's SDKs send it.
    pub fn key_id(self, id: &str) -> Self {
        self.header("API_KEY_ID", id)
    }

    /// Both of a project's keys, as headers.
    pub fn keys(self, keys: &Keys) -> Self {
        self.header("API_KEY_ID", &keys.id)
            .header("API_SECRET_KEY", &keys.secret)
    }

    /// A body, with this `Content-Type` (none when `None`).
    pub fn body(mut self, content_type: Option<&str>, body: impl Into<Vec<u8>>) -> Self {
        if let Some(content_type) = content_type {
            self = self.header("Content-Type", content_type);
        }
        self.body = body.into();
        self
    }

    /// A JSON body.
    pub fn json(self, value: &Value) -> Self {
        self.body(Some("application/json"), serde_json::to_vec(value).unwrap())
    }

    /// The path, without the query.
    pub fn path(&self) -> &str {
        self.uri.split('?').next().unwrap_or_default()
    }

    /// A one-line description for failure messages: method, URI and the body's start.
    pub fn describe(&self) -> String {
        let body = String::from_utf8_lossy(&self.body[..self.body.len().min(100)]);
        let uri: String = self.uri.chars().take(120).collect();
        let content_type = self
            .headers
            .iter()
            .find(|(name, _)| name == "Content-Type")
            .map_or("-", |(_, value)| value);
        format!(
            "{} {uri} [{content_type}] {body:?}{}",
            self.method,
            if self.body.len() > 100 { "…" } else { "" }
        )
    }

    /// The request for the in-process app.
    pub fn test_request(&self) -> TestRequest {
        let mut req = TestRequest::default()
            .method(self.method.clone())
            .uri(&self.uri);
        for (name, value) in &self.headers {
            req = req.append_header((name.as_str(), value.as_str()));
        }
        if !self.body.is_empty() {
            req = req.set_payload(self.body.clone());
        }
        req
    }

    /// The request as bytes on the wire, closing the connection after the answer.
    pub fn wire(&self) -> Vec<u8> {
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: localhost\r\n",
            self.method, self.uri
        );
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.body.len()
        ));
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

/// Sends a [`Req`] through the in-process app.
pub async fn call<S, B>(svc: &S, req: &Req) -> Reply
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    send(svc, req.test_request()).await
}

/// Sends a [`Req`] through the in-process app and asserts a 200; its JSON.
pub async fn call_ok<S, B>(svc: &S, req: &Req) -> Value
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let reply = call(svc, req).await;
    assert_eq!(
        reply.status,
        actix_web::http::StatusCode::OK,
        "{}: {}",
        req.describe(),
        reply.body
    );
    reply.json()
}
