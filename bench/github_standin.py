#!/usr/bin/env python3
"""A local GitHub stand-in for the scale benchmark (issue 18): a synthetic organisation
`acme` served over GitHub's REST endpoints and the GraphQL query Trellis makes, with answers
shaped like GitHub's published ones, ETags and `304 Not Modified`, rate-limit headers, and
request counts.

    python3 bench/github_standin.py --repos 2000 --members 1000 --port 8931 [--rate-limit 5000]

Point Trellis at it with `sources.github.api_url: http://127.0.0.1:8931`, `orgs: [acme]`
and any token (`token_env` naming a variable set to anything). Counts are served at
`GET /_stats` as JSON: {"requests": total, "by_route": {"GET /orgs/{org}/repos": n, ...},
"not_modified": n} (the stand-in's own `/_stats` and `/_reset` are not counted);
`POST /_reset` sets them to zero. Like GitHub, the stand-in counts what each limit (`core`,
`graphql`) has spent — a `304` spends nothing — and past `--rate-limit` (default 5000, per
limit, for the whole life of the process: the reset is an hour away) answers `403` with
`X-RateLimit-Remaining: 0`, or GraphQL's `RATE_LIMITED` error.

The organisation is deterministic. Repository i (`repo-0000`…):
  - classic branch protection on `main` when i % 3 == 0 (one review, admins included,
    status check `ci/build`), the organisation ruleset 21 when i % 3 == 1 (one review, nobody
    bypasses, status check `ci/test`, force pushes blocked), nothing when i % 3 == 2;
  - Dependabot alerts off when i % 7 == 0, else one open alert when i % 5 == 0;
  - archived when i % 50 == 49, a fork when i % 50 == 48 (Trellis skips both by default);
  - secret scanning on when i is even, push protection when i % 4 == 0.
Members `user-0000`…: the first three are owners, every 100th has 2FA disabled; two outside
collaborators, one without 2FA. Python standard library only.
"""

import argparse
import hashlib
import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

ORG = "acme"
ORG_ID = 9919
PER_PAGE_MAX = 100
RATE_LIMIT = 5000  # per limit; --rate-limit
# The advisory of every planted alert (lodash's command injection).
ADVISORY_IDS = [
    {"type": "GHSA", "value": "GHSA-35jh-r3h4-6jhm"},
    {"type": "CVE", "value": "CVE-2021-23337"},
]


class Org:
    def __init__(self, repos, members):
        self.repos = repos
        self.members = members

    # -- the model -------------------------------------------------------------------------

    @staticmethod
    def name(i):
        return "repo-%04d" % i

    @staticmethod
    def classic(i):
        return i % 3 == 0

    @staticmethod
    def ruleset(i):
        return i % 3 == 1

    @staticmethod
    def alerts_on(i):
        return i % 7 != 0

    def has_alert(self, i):
        return self.alerts_on(i) and i % 5 == 0

    def index(self, name):
        m = re.fullmatch(r"repo-(\d{4,})", name)
        if not m:
            return None
        i = int(m.group(1))
        return i if i < self.repos else None

    # -- REST shapes -----------------------------------------------------------------------

    def user(self, i):
        login = "user-%04d" % i
        return {
            "login": login,
            "id": 1000 + i,
            "node_id": "MDQ6VXNlcj%d" % (1000 + i),
            "avatar_url": "https://avatars.githubusercontent.com/u/%d?v=4" % (1000 + i),
            "gravatar_id": "",
            "url": "https://api.github.com/users/" + login,
            "html_url": "https://github.com/" + login,
            "type": "User",
            "site_admin": False,
        }

    def outside(self, i):
        u = self.user(900000 + i)
        u["login"] = "ext-%02d" % i
        return u

    def repo(self, i):
        n = self.name(i)
        on = lambda b: {"status": "enabled" if b else "disabled"}  # noqa: E731
        return {
            "id": 5000 + i,
            "node_id": "R_kgDO%06d" % i,
            "name": n,
            "full_name": "%s/%s" % (ORG, n),
            "private": True,
            "visibility": "private",
            "owner": {"login": ORG, "id": ORG_ID, "type": "Organization", "site_admin": False},
            "html_url": "https://github.com/%s/%s" % (ORG, n),
            "description": None,
            "fork": i % 50 == 48,
            "url": "https://api.github.com/repos/%s/%s" % (ORG, n),
            "archived": i % 50 == 49,
            "disabled": False,
            "default_branch": "main",
            "created_at": "2024-01-01T00:00:00Z",
            "updated_at": "2026-11-20T00:00:00Z",
            "pushed_at": "2026-11-20T00:00:00Z",
            "permissions": {"admin": True, "maintain": True, "push": True, "triage": True, "pull": True},
            "security_and_analysis": {
                "advanced_security": on(True),
                "secret_scanning": on(i % 2 == 0),
                "secret_scanning_push_protection": on(i % 4 == 0),
                "secret_scanning_non_provider_patterns": on(False),
                "dependabot_security_updates": on(self.alerts_on(i)),
            },
        }

    def created(self, i):
        return "2026-10-01T09:00:00Z" if i % 10 == 0 else "2026-11-20T09:00:00Z"

    def alert(self, i):
        n = self.name(i)
        return {
            "number": 1,
            "state": "open",
            "dependency": {
                "package": {"ecosystem": "npm", "name": "lodash"},
                "manifest_path": "package-lock.json",
                "scope": "runtime",
            },
            "security_advisory": {
                "ghsa_id": "GHSA-35jh-r3h4-6jhm",
                "cve_id": "CVE-2021-23337",
                "summary": "Command Injection in lodash",
                "severity": "high",
                "identifiers": ADVISORY_IDS,
            },
            "security_vulnerability": {
                "package": {"ecosystem": "npm", "name": "lodash"},
                "severity": "high",
                "vulnerable_version_range": "< 4.17.21",
                "first_patched_version": {"identifier": "4.17.21"},
            },
            "url": "https://api.github.com/repos/%s/%s/dependabot/alerts/1" % (ORG, n),
            "html_url": "https://github.com/%s/%s/security/dependabot/1" % (ORG, n),
            "created_at": self.created(i),
            "updated_at": "2026-11-20T09:00:00Z",
        }

    def protection(self, i):
        base = "https://api.github.com/repos/%s/%s/branches/main/protection" % (ORG, self.name(i))
        return {
            "url": base,
            "required_status_checks": {
                "url": base + "/required_status_checks",
                "strict": False,
                "contexts": ["ci/build"],
                "checks": [{"context": "ci/build", "app_id": None}],
            },
            "enforce_admins": {"url": base + "/enforce_admins", "enabled": True},
            "required_pull_request_reviews": {
                "url": base + "/required_pull_request_reviews",
                "dismiss_stale_reviews": False,
                "require_code_owner_reviews": False,
                "required_approving_review_count": 1,
                "require_last_push_approval": False,
            },
            "required_linear_history": {"enabled": False},
            "allow_force_pushes": {"enabled": False},
            "allow_deletions": {"enabled": False},
        }

    def rules(self, i):
        if not self.ruleset(i):
            return []
        src = {"ruleset_source_type": "Organization", "ruleset_source": ORG, "ruleset_id": 21}
        return [
            dict(src, type="pull_request", parameters={
                "required_approving_review_count": 1,
                "dismiss_stale_reviews_on_push": True,
                "require_code_owner_review": False,
                "require_last_push_approval": False,
                "required_review_thread_resolution": False,
            }),
            dict(src, type="required_status_checks", parameters={
                "strict_required_status_checks_policy": False,
                "required_status_checks": [{"context": "ci/test"}],
            }),
            dict(src, type="non_fast_forward"),
        ]

    def org_ruleset(self):
        return {
            "id": 21,
            "name": "protect-default-branches",
            "target": "branch",
            "source_type": "Organization",
            "source": ORG,
            "enforcement": "active",
            "bypass_actors": [],
            "conditions": {
                "ref_name": {"include": ["~DEFAULT_BRANCH"], "exclude": []},
                "repository_name": {"include": ["~ALL"], "exclude": [], "protected": False},
            },
        }

    # -- GraphQL shapes ---------------------------------------------------------------------

    def repo_graphql(self, i):
        ruleset = {
            "databaseId": 21,
            "name": "protect-default-branches",
            "source": {"__typename": "Organization", "login": ORG},
        }
        rules = []
        if self.ruleset(i):
            rules = [
                {"type": "PULL_REQUEST", "parameters": {
                    "requiredApprovingReviewCount": 1,
                    "dismissStaleReviewsOnPush": True,
                    "requireCodeOwnerReview": False,
                }, "repositoryRuleset": ruleset},
                {"type": "REQUIRED_STATUS_CHECKS", "parameters": {
                    "requiredStatusChecks": [{"context": "ci/test"}],
                }, "repositoryRuleset": ruleset},
                {"type": "NON_FAST_FORWARD", "parameters": None, "repositoryRuleset": ruleset},
            ]
        protection = None
        if self.classic(i):
            protection = {
                "pattern": "main",
                "requiresApprovingReviews": True,
                "requiredApprovingReviewCount": 1,
                "dismissesStaleReviews": False,
                "requiresCodeOwnerReviews": False,
                "isAdminEnforced": True,
                "requiresStatusChecks": True,
                "requiredStatusCheckContexts": ["ci/build"],
                "allowsForcePushes": False,
                "allowsDeletions": False,
            }
        alerts = []
        if self.has_alert(i):
            alerts = [{
                "number": 1,
                "state": "OPEN",
                "createdAt": self.created(i),
                "vulnerableManifestPath": "package-lock.json",
                "securityVulnerability": {
                    "severity": "HIGH",
                    "package": {"ecosystem": "NPM", "name": "lodash"},
                    "firstPatchedVersion": {"identifier": "4.17.21"},
                },
                "securityAdvisory": {
                    "ghsaId": "GHSA-35jh-r3h4-6jhm",
                    "severity": "HIGH",
                    "summary": "Command Injection in lodash",
                    "identifiers": ADVISORY_IDS,
                },
            }]
        return {
            "nameWithOwner": "%s/%s" % (ORG, self.name(i)),
            "viewerCanAdminister": True,
            "hasVulnerabilityAlertsEnabled": self.alerts_on(i),
            "defaultBranchRef": {
                "name": "main",
                "branchProtectionRule": protection,
                "rules": {"pageInfo": {"hasNextPage": False}, "nodes": rules},
            },
            "vulnerabilityAlerts": {"pageInfo": {"hasNextPage": False}, "nodes": alerts},
        }


class Counters:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.requests = 0
        self.not_modified = 0
        self.by_route = {}
        self.core_used = 0
        self.graphql_used = 0
        self.refused = 0

    def snapshot(self):
        with self.lock:
            return {
                "requests": self.requests,
                "by_route": dict(sorted(self.by_route.items())),
                "not_modified": self.not_modified,
                "rate_limited": self.refused,
            }


def route_of(method, path):
    m = re.match(r"^/repos/[^/]+/[^/]+(/.*)?$", path)
    if m:
        path = "/repos/{owner}/{repo}" + (m.group(1) or "")
    path = re.sub(r"^/(orgs|organizations)/[^/]+", "/orgs/{org}", path)
    path = re.sub(r"/rulesets/\d+$", "/rulesets/{id}", path)
    return "%s %s" % (method, path)


def make_handler(org, counters, reset_at):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "GitHub.com"

        def log_message(self, fmt, *args):  # quiet
            pass

        def _count(self, method, path):
            with counters.lock:
                counters.requests += 1
                r = route_of(method, path)
                counters.by_route[r] = counters.by_route.get(r, 0) + 1

        def _exhausted(self, resource):
            with counters.lock:
                used = counters.core_used if resource == "core" else counters.graphql_used
                if used < RATE_LIMIT:
                    return False
                counters.refused += 1
            headers = {
                "X-RateLimit-Limit": str(RATE_LIMIT),
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(reset_at),
                "X-RateLimit-Used": str(RATE_LIMIT),
                "X-RateLimit-Resource": resource,
                "Content-Type": "application/json; charset=utf-8",
            }
            if resource == "core":
                body = {
                    "message": "API rate limit exceeded for user ID 1. If you reach out to GitHub Support for help, please include the request ID.",
                    "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
                    "status": "403",
                }
                status = 403
            else:
                body = {"errors": [{"type": "RATE_LIMITED", "message": "API rate limit already exceeded for user ID 1."}]}
                status = 200
            data = json.dumps(body).encode()
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return True

        def _send(self, status, body=None, headers=None, resource="core"):
            data = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
            with counters.lock:
                if status != 304:
                    if resource == "core":
                        counters.core_used += 1
                    else:
                        counters.graphql_used += 1
                used = counters.core_used if resource == "core" else counters.graphql_used
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("X-GitHub-Api-Version-Selected", "2022-11-28")
            self.send_header("X-RateLimit-Limit", str(RATE_LIMIT))
            self.send_header("X-RateLimit-Remaining", str(max(RATE_LIMIT - used, 0)))
            self.send_header("X-RateLimit-Reset", str(reset_at))
            self.send_header("X-RateLimit-Used", str(used))
            self.send_header("X-RateLimit-Resource", resource)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if data and self.command != "HEAD":
                self.wfile.write(data)

        def _json(self, status, body, link=None):
            """A REST answer with an ETag; `304` when the client already has it."""
            headers = {}
            if link:
                headers["Link"] = link
            if status == 200:
                raw = json.dumps(body, separators=(",", ":")).encode()
                etag = '"%s"' % hashlib.sha256(raw).hexdigest()[:32]
                headers["ETag"] = etag
                headers["Cache-Control"] = "private, max-age=60, s-maxage=60"
                headers["Vary"] = "Accept, Authorization, Cookie, X-GitHub-OTP"
                if self.headers.get("If-None-Match") == etag:
                    with counters.lock:
                        counters.not_modified += 1
                    return self._send(304, None, headers)
            return self._send(status, body, headers)

        def _page(self, route, items, query):
            page = int(query.get("page", ["1"])[0])
            per_page = min(int(query.get("per_page", ["30"])[0]), PER_PAGE_MAX)
            pages = max((len(items) + per_page - 1) // per_page, 1)
            chunk = items[(page - 1) * per_page: page * per_page]
            link = None
            base = "http://%s" % self.headers.get("Host", "127.0.0.1")
            parts = []
            if page < pages:
                parts.append('<%s%sper_page=%d&page=%d>; rel="next"' % (base, route, per_page, page + 1))
                parts.append('<%s%sper_page=%d&page=%d>; rel="last"' % (base, route, per_page, pages))
            if page > 1:
                parts.append('<%s%sper_page=%d&page=1>; rel="first"' % (base, route, per_page))
            if parts:
                link = ", ".join(parts)
            return self._json(200, chunk, link)

        def do_GET(self):
            url = urlsplit(self.path)
            path = url.path
            query = parse_qs(url.query)
            if path == "/_stats":
                return self._send(200, counters.snapshot())
            self._count("GET", path)
            if self._exhausted("core"):
                return
            for prefix in ("/api/v3",):
                if path.startswith(prefix + "/"):
                    path = path[len(prefix):]
            if path in ("/orgs/%s" % ORG, "/organizations/%d" % ORG_ID):
                return self._json(200, {
                    "login": ORG, "id": ORG_ID, "node_id": "O_kgDOAAAmxw",
                    "url": "https://api.github.com/orgs/" + ORG, "type": "Organization",
                    "two_factor_requirement_enabled": True,
                    "public_repos": 0, "total_private_repos": org.repos,
                    "members_can_create_repositories": False,
                })
            if path in ("/orgs/%s/members" % ORG, "/organizations/%d/members" % ORG_ID):
                if "role" in query and query["role"][0] == "admin":
                    users = [org.user(i) for i in range(min(3, org.members))]
                    return self._page("/organizations/%d/members?role=admin&" % ORG_ID, users, query)
                if "filter" in query:
                    users = [org.user(i) for i in range(0, org.members, 100) if i > 0]
                    return self._page("/organizations/%d/members?filter=2fa_disabled&" % ORG_ID, users, query)
                users = [org.user(i) for i in range(org.members)]
                return self._page("/organizations/%d/members?" % ORG_ID, users, query)
            if path in ("/orgs/%s/outside_collaborators" % ORG, "/organizations/%d/outside_collaborators" % ORG_ID):
                users = [org.outside(0), org.outside(1)]
                if "filter" in query:
                    users = users[1:]
                return self._json(200, users)
            if path in ("/orgs/%s/repos" % ORG, "/organizations/%d/repos" % ORG_ID):
                repos = [org.repo(i) for i in range(org.repos)]
                return self._page("/organizations/%d/repos?type=all&" % ORG_ID, repos, query)
            if path == "/orgs/%s/rulesets/21" % ORG:
                return self._json(200, org.org_ruleset())
            m = re.fullmatch(r"/repos/%s/([^/]+)/(.+)" % ORG, path)
            if m:
                i = org.index(m.group(1))
                what = m.group(2)
                if i is not None:
                    if what == "branches/main/protection":
                        if org.classic(i):
                            return self._json(200, org.protection(i))
                        return self._json(404, {
                            "message": "Branch not protected",
                            "documentation_url": "https://docs.github.com/rest/branches/branch-protection#get-branch-protection",
                            "status": "404",
                        })
                    if what == "rules/branches/main":
                        return self._page("/repos/%s/%s/rules/branches/main?" % (ORG, org.name(i)), org.rules(i), query)
                    if what == "vulnerability-alerts":
                        if org.alerts_on(i):
                            return self._send(204)
                        return self._json(404, {"message": "Not Found"})
                    if what == "dependabot/alerts":
                        if not org.alerts_on(i):
                            return self._json(403, {
                                "message": "Dependabot alerts are disabled for this repository.",
                                "documentation_url": "https://docs.github.com/rest/dependabot/alerts#list-dependabot-alerts-for-a-repository",
                                "status": "403",
                            })
                        alerts = [org.alert(i)] if org.has_alert(i) else []
                        return self._json(200, alerts)
            return self._json(404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"})

        def do_POST(self):
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length", "0") or 0)
            raw = self.rfile.read(length) if length else b""
            if url.path == "/_reset":
                with counters.lock:
                    counters.reset()
                return self._send(200, {"reset": True})
            self._count("POST", url.path)
            if url.path not in ("/graphql", "/api/graphql"):
                return self._json(404, {"message": "Not Found"})
            if self._exhausted("graphql"):
                return
            try:
                request = json.loads(raw or b"{}")
            except ValueError:
                return self._send(400, {"message": "Problems parsing JSON"}, resource="graphql")
            variables = request.get("variables") or {}
            data = {}
            errors = []
            k = 0
            while ("n%d" % k) in variables:
                alias = "r%d" % k
                name = variables["n%d" % k]
                i = org.index(name) if variables.get("owner") == ORG else None
                if i is None:
                    data[alias] = None
                    errors.append({
                        "type": "NOT_FOUND",
                        "path": [alias],
                        "locations": [{"line": 3, "column": 3}],
                        "message": "Could not resolve to a Repository with the name '%s/%s'." % (variables.get("owner"), name),
                    })
                else:
                    data[alias] = org.repo_graphql(i)
                k += 1
            with counters.lock:
                remaining = max(RATE_LIMIT - counters.graphql_used - 1, 0)
            data["rateLimit"] = {
                "cost": 1 + (2 * k + 99) // 100,
                "remaining": remaining,
                "resetAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(reset_at)),
            }
            body = {"data": data}
            if errors:
                body["errors"] = errors
            return self._send(200, body, resource="graphql")

    return Handler


def main(argv=None):
    global RATE_LIMIT
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repos", type=int, default=2000)
    p.add_argument("--members", type=int, default=1000)
    p.add_argument("--port", type=int, default=8931)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--rate-limit", type=int, default=RATE_LIMIT,
                   help="requests each limit (core, graphql) allows before refusing (default 5000)")
    args = p.parse_args(argv)
    RATE_LIMIT = args.rate_limit
    org = Org(args.repos, args.members)
    counters = Counters()
    reset_at = int(time.time()) + 3600
    server = ThreadingHTTPServer((args.host, args.port), make_handler(org, counters, reset_at))
    server.daemon_threads = True
    print("github stand-in: %d repositories, %d members on http://%s:%d (stats: /_stats)"
          % (args.repos, args.members, args.host, server.server_address[1]), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        print(json.dumps(counters.snapshot()), file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
