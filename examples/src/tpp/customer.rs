//! The scripted customer: logs in and approves (or rejects) on the bank's
//! real pages, as a browser would, for the demo and the tests.

#[allow(clippy::wildcard_imports)]
use super::*;

/// Plays the customer's browser against the bank's pages: follows the
/// authorization URL, logs in, chooses accounts and approves or rejects,
/// and returns the `Location` the bank redirects to (the JARM response).
#[derive(Debug)]
pub struct ScriptedCustomer<'a> {
    /// The browser (no client certificate; trusts the bank's CA).
    pub browser: &'a reqwest::Client,
    /// Login name.
    pub username: &'a str,
    /// Password.
    pub password: &'a str,
}

/// The `name=value` of the cookie `name` a response sets, if it does.
pub(super) fn set_cookie(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find(|kv| {
            kv.split_once('=')
                .is_some_and(|(k, v)| k == name && !v.is_empty())
        })
        .map(str::to_owned)
}

/// The value of the hidden input `name` in `html` (the scripted customer's
/// reading of a form; the bank's pages are its own, escaped, HTML).
pub(super) fn hidden(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html.get(start..)?.find('"')? + start;
    html.get(start..end).map(|v| v.replace("&amp;", "&"))
}

impl ScriptedCustomer<'_> {
    /// Posts the login form of `login_page` (for an authorization request,
    /// or the dashboard), with the login cookie the page came with; returns
    /// the session cookie and where the bank sends the browser next.
    async fn login(
        &self,
        base: &str,
        login_page: &str,
        login_cookie: Option<&str>,
    ) -> Result<(String, String), TppError> {
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("csrf", &hidden(login_page, "csrf").unwrap_or_default())
            .append_pair("username", self.username)
            .append_pair("password", self.password)
            .append_pair(
                "client_id",
                &hidden(login_page, "client_id").unwrap_or_default(),
            )
            .append_pair(
                "request_uri",
                &hidden(login_page, "request_uri").unwrap_or_default(),
            )
            .finish();
        let mut req = self
            .browser
            .post(format!("{base}/login"))
            .header("content-type", "application/x-www-form-urlencoded");
        if let Some(c) = login_cookie {
            req = req.header("cookie", c);
        }
        let resp = req.body(form).send().await.map_err(transport)?;
        if resp.status() != StatusCode::SEE_OTHER {
            return Err(TppError::Protocol("login failed".into()));
        }
        let cookie = set_cookie(&resp, "bank_session")
            .ok_or_else(|| TppError::Protocol("no session cookie".into()))?;
        let next = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| TppError::Protocol("no redirect after login".into()))?;
        Ok((cookie, next))
    }

    /// GETs `url` (with `cookie`); the status, the page, and the login
    /// cookie if the page set one.
    async fn follow_to_page(
        &self,
        url: &str,
        cookie: Option<&str>,
    ) -> Result<(u16, String, Option<String>), TppError> {
        let mut req = self.browser.get(url);
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status().as_u16();
        let login_cookie = set_cookie(&resp, "__Host-bank_login");
        Ok((status, resp.text().await.map_err(transport)?, login_cookie))
    }

    /// Goes through login and the consent screen; `accounts` are the
    /// accounts to tick (for a payment: the one to pay from).
    ///
    /// # Errors
    /// [`TppError`]: a page answered with an error status, or the login
    /// failed.
    pub async fn authorize(
        &self,
        authorization_url: &str,
        accounts: &[&str],
        approve: bool,
    ) -> Result<String, TppError> {
        let (status, login, login_cookie) = self.follow_to_page(authorization_url, None).await?;
        if status != 200 {
            return Err(TppError::Status {
                status,
                body: login,
            });
        }
        let base = authorization_url
            .split("/authorize")
            .next()
            .unwrap_or_default();
        let (cookie, next) = self.login(base, &login, login_cookie.as_deref()).await?;
        let (status, consent, _) = self
            .follow_to_page(&format!("{base}{next}"), Some(&cookie))
            .await?;
        if status != 200 {
            return Err(TppError::Status {
                status,
                body: consent,
            });
        }
        // built before any await: the serializer is not Send
        let decision = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            for name in ["csrf", "client_id", "request_uri"] {
                form.append_pair(name, &hidden(&consent, name).unwrap_or_default());
            }
            let payment = consent.contains("type=\"radio\"");
            for a in accounts {
                if payment {
                    form.append_pair("account", a);
                } else {
                    form.append_pair(&format!("account-{a}"), "on");
                }
            }
            form.append_pair("decision", if approve { "approve" } else { "reject" });
            form.finish()
        };
        let resp = self
            .browser
            .post(format!("{base}/authorize/decision"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", &cookie)
            .body(decision)
            .send()
            .await
            .map_err(transport)?;
        let status = resp.status().as_u16();
        match resp.headers().get("location").and_then(|v| v.to_str().ok()) {
            Some(l) if status == 303 => Ok(l.to_owned()),
            _ => Err(TppError::Status {
                status,
                body: resp.text().await.unwrap_or_default(),
            }),
        }
    }

    /// Logs in to the dashboard and reads its pages, newest first,
    /// following its "Older consents" links (at most `max_pages`); returns
    /// the session cookie and the pages.
    ///
    /// # Errors
    /// [`TppError`].
    pub async fn dashboard_pages(
        &self,
        base: &str,
        max_pages: usize,
    ) -> Result<(String, Vec<String>), TppError> {
        let (_, login, login_cookie) = self
            .follow_to_page(&format!("{base}/dashboard"), None)
            .await?;
        let (cookie, _) = self.login(base, &login, login_cookie.as_deref()).await?;
        let mut pages = Vec::new();
        let mut next = Some(format!("{base}/dashboard"));
        while let Some(url) = next.take() {
            if pages.len() >= max_pages {
                break;
            }
            let (status, page, _) = self.follow_to_page(&url, Some(&cookie)).await?;
            if status != 200 {
                return Err(TppError::Status { status, body: page });
            }
            const OLDER: &str = "href=\"/dashboard?after=";
            next = page.find(OLDER).and_then(|i| {
                let rest = page.get(i + OLDER.len()..)?;
                let cursor = rest.get(..rest.find('"')?)?;
                Some(format!("{base}/dashboard?after={cursor}"))
            });
            pages.push(page);
        }
        Ok((cookie, pages))
    }

    /// Logs in to the dashboard, finds `consent_id` on its pages and
    /// revokes it; returns the page it was on.
    ///
    /// # Errors
    /// [`TppError`].
    pub async fn revoke_on_dashboard(
        &self,
        base: &str,
        consent_id: &str,
    ) -> Result<String, TppError> {
        let (cookie, pages) = self.dashboard_pages(base, 100).await?;
        let Some(page) = pages.into_iter().find(|p| p.contains(consent_id)) else {
            return Err(TppError::Protocol(
                "consent not listed on the dashboard".into(),
            ));
        };
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("csrf", &hidden(&page, "csrf").unwrap_or_default())
            .append_pair("consent_id", consent_id)
            .finish();
        let resp = self
            .browser
            .post(format!("{base}/dashboard/revoke"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", &cookie)
            .body(form)
            .send()
            .await
            .map_err(transport)?;
        if resp.status() != StatusCode::SEE_OTHER {
            return Err(TppError::Status {
                status: resp.status().as_u16(),
                body: resp.text().await.unwrap_or_default(),
            });
        }
        Ok(page)
    }
}
