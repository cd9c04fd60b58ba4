// SPDX-License-Identifier: MIT
// redkit-queue serve: a web board over the queues (cpp-httplib). One page (board_page.hpp) that
// polls a small JSON API every second:
//
//   GET  /                                    the page
//   GET  /api/queues                          every queue, its counts and whether it is paused
//   GET  /api/metrics?queue=Q&minutes=N       completed and failed per minute (queue::metrics)
//   GET  /api/jobs?queue=Q&state=S&offset=O&count=C   a page of jobs in one state (with &group=G:
//                                             group G's line, state waiting)
//   GET  /api/job?queue=Q&id=ID               a job: data, options, trace, logs, flow links
//   GET  /api/groups?queue=Q&offset=O&count=C a page of the queue's groups, and the limits they share
//   POST /api/retry?queue=Q&id=ID             retry a failed job
//   POST /api/retry-all?queue=Q               retry every failed job (redkit-queue retry Q --all)
//   POST /api/remove?queue=Q&id=ID            remove a job that is not running
//   POST /api/cancel?queue=Q&id=ID&reason=R   cancel a running job (queue::cancel; it fails)
//   POST /api/clean?queue=Q&state=S&grace=MS  remove the completed or failed jobs finished at least
//                                             MS ago (default 0: all; redkit-queue clean); the page
//                                             asks first
//   POST /api/pause?queue=Q, /api/resume?queue=Q
//   POST /api/pause-group?queue=Q&group=G     pause one group (also one with no jobs yet)
//   POST /api/resume-group?queue=Q&group=G    resume one (404 when queue::group does not list it)
//   GET  /metrics                             every queue in the Prometheus text format (prometheus_text)
//
// A job's "due" is when a delayed one is due (ms, its score in the delayed set; 0 otherwise), a
// group's "held_until" when its rate limit lets it start again (ms, null when not held), and
// /api/jobs, /api/job and /api/groups give the server's "now" (ms) to count from.
//
// Safety: it listens on loopback unless told otherwise, and anywhere else only with a token
// (Authorization: Bearer T, or ?token=T for the page), compared in constant time. On loopback
// it answers only requests whose Host is localhost, an IPv4 address in 127.0.0.0/8 or [::1],
// with or without a port (is_loopback_host): a web page that rebinds its DNS name to 127.0.0.1
// gets 403. POSTs need the header X-Redkit-Board: 1, which a cross-site form cannot send. Job
// data is shown as text, never as HTML.
#pragma once

#include <redkit/redkit.hpp>

#include "board_page.hpp"
#include "tool.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <exception>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <pthread.h>

namespace redkit_queue {

struct board_options {
    std::string bind = "127.0.0.1";
    int port = 0;  // 0: any free port (printed)
    std::string token;
};

// A loopback name or address, as --bind takes it: "localhost" in any case; an IPv4 address in
// 127.0.0.0/8 as inet_pton reads it (four decimal parts 0-255, no leading zeros, so never
// "127.1", "0x7f.0.0.1" or "127.0.0.01"); ::1 in any spelling inet_pton takes, bare or in
// brackets. Nothing else: anyone can point "127.0.0.1.attacker.example" anywhere.
inline bool is_loopback_name(std::string_view host) {
    constexpr std::string_view localhost = "localhost";
    const auto lower = [](char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); };
    if (host.size() == localhost.size() &&
        std::equal(host.begin(), host.end(), localhost.begin(), [&](char a, char b) { return lower(a) == b; })) {
        return true;
    }
    const bool bracketed = host.size() >= 2 && host.front() == '[' && host.back() == ']';
    if (bracketed) host = host.substr(1, host.size() - 2);
    if (host.empty() || host.size() > INET6_ADDRSTRLEN) return false;
    const std::string text(host);  // inet_pton wants a terminated string
    in_addr v4{};
    if (!bracketed && ::inet_pton(AF_INET, text.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
    in6_addr v6{};
    return ::inet_pton(AF_INET6, text.c_str(), &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

// A Host header naming this machine: "localhost" (any case), an IPv4 address in 127.0.0.0/8 or
// ::1 in brackets (is_loopback_name), then nothing or ":port", the port 1 to 5 digits in
// [1, 65535]. Anything more (".attacker.example", "evil", an empty port) is refused.
inline bool is_loopback_host(std::string_view header) {
    std::string_view host = header;
    std::string_view port;
    bool has_port = false;
    if (!header.empty() && header.front() == '[') {
        const auto close = header.find(']');
        if (close == std::string_view::npos) return false;
        host = header.substr(0, close + 1);
        if (close + 1 < header.size()) {
            if (header[close + 1] != ':') return false;
            has_port = true;
            port = header.substr(close + 2);
        }
    } else if (const auto colon = header.find(':'); colon != std::string_view::npos) {
        host = header.substr(0, colon);  // so a bare IPv6 address never passes
        has_port = true;
        port = header.substr(colon + 1);
    }
    if (has_port) {
        if (port.empty() || port.size() > 5) return false;
        long n = 0;
        for (char c : port) {
            if (c < '0' || c > '9') return false;
            n = n * 10 + (c - '0');
        }
        if (n < 1 || n > 65535) return false;
    }
    return is_loopback_name(host);
}

inline bool same_secret(const std::string& a, const std::string& b) {
    unsigned char diff = a.size() == b.size() ? 0 : 1;
    for (std::size_t i = 0; i < a.size(); ++i) {
        diff = static_cast<unsigned char>(diff | (a[i] ^ (i < b.size() ? b[i] : 0)));
    }
    return diff == 0;
}

// Text that may not be UTF-8 (a job's raw payload) into JSON: invalid bytes become U+FFFD.
inline std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

inline json job_summary(const redkit::job<json>& j) {
    return {{"id", j.id()},
            {"name", j.name()},
            {"state", redkit::to_string(j.state())},
            {"attempts_made", j.attempts_made()},
            {"max_attempts", j.max_attempts()},
            {"priority", j.priority()},
            {"created", j.created_at()},
            {"processed", j.processed_at()},
            {"finished", j.finished_at()},
            {"due", j.due_at()},
            {"data", one_line(j.raw_data(), 160)},
            {"reason", j.failed_reason()},
            {"pending_children", j.pending_children()},
            {"group", j.group()}};
}

inline json job_detail(const redkit::job<json>& j, const redkit::queue<json>& q) {
    json out = job_summary(j);
    const auto data = json::parse(j.raw_data(), nullptr, false);
    out["data"] = data.is_discarded() ? json(j.raw_data()) : data;
    out["return_value"] = j.return_value();
    out["progress"] = j.progress();
    out["trace"] = j.trace();
    out["stalls"] = j.stalls();
    out["scheduler"] = j.scheduler_id();
    out["deduplication"] = j.deduplication_id();
    out["logs"] = q.logs(j.id(), 0, 1000).lines;
    if (const auto p = j.parent()) out["parent"] = {{"queue", p->queue}, {"id", p->id}};
    json children = json::array();
    for (const auto& c : q.children_values(j.id())) {
        children.push_back({{"queue", c.queue}, {"id", c.id}, {"value", c.value}});
    }
    for (const auto& c : q.ignored_failures(j.id())) {
        children.push_back({{"queue", c.queue}, {"id", c.id}, {"ignored", c.reason}});
    }
    out["children"] = std::move(children);
    return out;
}

inline json counts_json(const redkit::job_counts& c) {
    return {{"waiting", c.waiting},     {"active", c.active},
            {"delayed", c.delayed},     {"prioritized", c.prioritized},
            {"completed", c.completed}, {"failed", c.failed},
            {"paused", c.paused},       {"waiting-children", c.waiting_children},
            {"grouped", c.grouped}};
}

inline long long ms_since_epoch(std::chrono::system_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

// What GET /metrics says of one queue: its jobs by state, whether it is paused, the jobs that
// finished in the last whole minute (of those still kept: queue::metrics), its live workers, and its
// newest finished jobs' times. Per queue: the counts, pause, metrics and workers scripts and two
// pages of finished jobs.
struct queue_gauges {
    std::string name;
    redkit::job_counts counts;
    bool paused = false;
    redkit::minute_counts last_minute;
    std::size_t workers = 0;
    // of its newest finished jobs (at most 100 completed and 100 failed): seconds from due to the
    // last attempt's start, and the last attempt's run
    std::vector<double> waits, runs;
};

// The gauges of a queue, read from the server.
template <class Queue>
queue_gauges read_gauges(const std::string& name, const Queue& q) {
    queue_gauges g;
    g.name = name;
    g.counts = q.counts();
    g.paused = q.is_paused();
    g.last_minute = q.metrics(std::chrono::minutes(2)).front();  // the one before this
    g.workers = q.workers();
    for (const auto state : {redkit::job_state::completed, redkit::job_state::failed}) {
        for (const auto& j : q.jobs(state, 0, 100, true).jobs) {
            if (j.processed_at() <= 0 || j.finished_at() < j.processed_at()) continue;
            const long long due = j.created_at() + j.delay().count();
            g.waits.push_back(static_cast<double>(std::max(0LL, j.processed_at() - due)) / 1000.0);
            g.runs.push_back(static_cast<double>(j.finished_at() - j.processed_at()) / 1000.0);
        }
    }
    return g;
}

// Every queue in the Prometheus text format (version 0.0.4): gauges of the counts per state,
// pause, the last whole minute's finished jobs and the live workers; and summaries of the newest
// finished jobs' waiting and processing times (quantiles 0.5, 0.9, 0.99, their sum and count).
inline std::string prometheus_text(const std::vector<queue_gauges>& queues) {
    std::string out;
    const auto head = [&](const char* name, const char* help, const char* type = "gauge") {
        out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
    };
    const auto number = [](double v) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.9g", v);
        return std::string(buf);
    };
    const auto label = [](const queue_gauges& g) { return "queue=" + redkit::metrics::label_value(g.name); };
    head("redkit_queue_jobs", "Jobs of each queue, by state (as redkit-queue counts shows them).");
    for (const auto& g : queues) {
        const auto& c = g.counts;
        const std::pair<const char*, long long> states[] = {
            {"waiting", c.waiting},     {"active", c.active},
            {"delayed", c.delayed},     {"prioritized", c.prioritized},
            {"completed", c.completed}, {"failed", c.failed},
            {"paused", c.paused},       {"waiting-children", c.waiting_children},
            {"grouped", c.grouped}};
        for (const auto& [state, n] : states) {
            out += "redkit_queue_jobs{" + label(g) + ",state=\"" + state + "\"} " + std::to_string(n) + "\n";
        }
    }
    head("redkit_queue_paused", "Whether the queue is paused (1) or not (0).");
    for (const auto& g : queues) out += "redkit_queue_paused{" + label(g) + "} " + (g.paused ? "1" : "0") + "\n";
    head("redkit_queue_finished_last_minute",
         "Jobs that finished in the last whole minute, by outcome, of those the queue still keeps.");
    for (const auto& g : queues) {
        out += "redkit_queue_finished_last_minute{" + label(g) + ",outcome=\"completed\"} " +
               std::to_string(g.last_minute.completed) + "\n";
        out += "redkit_queue_finished_last_minute{" + label(g) + ",outcome=\"failed\"} " +
               std::to_string(g.last_minute.failed) + "\n";
    }
    head("redkit_queue_workers", "Workers of the queue alive now, in every process (queue::workers).");
    for (const auto& g : queues) out += "redkit_queue_workers{" + label(g) + "} " + std::to_string(g.workers) + "\n";
    const auto summary = [&](const char* name, const char* help, std::vector<double> queue_gauges::*member) {
        head(name, help, "summary");
        for (const auto& g : queues) {
            std::vector<double> v = g.*member;
            std::sort(v.begin(), v.end());
            double sum = 0;
            for (const double x : v) sum += x;
            for (const double q : {0.5, 0.9, 0.99}) {
                const std::string value =
                    v.empty()
                        ? std::string("NaN")
                        : number(
                              v[std::min(v.size() - 1, static_cast<std::size_t>(q * static_cast<double>(v.size())))]);
                out += std::string(name) + "{" + label(g) + ",quantile=\"" + number(q) + "\"} " + value + "\n";
            }
            out += std::string(name) + "_sum{" + label(g) + "} " + number(sum) + "\n";
            out += std::string(name) + "_count{" + label(g) + "} " + std::to_string(v.size()) + "\n";
        }
    };
    summary("redkit_queue_wait_seconds",
            "Newest finished jobs (up to 100 completed and 100 failed): from due to their last attempt's start.",
            &queue_gauges::waits);
    summary("redkit_queue_processing_seconds",
            "Newest finished jobs (up to 100 completed and 100 failed): their last attempt's run.",
            &queue_gauges::runs);
    return out;
}

// A page of groups; a limit or time that is not set is null.
inline json groups_json(const redkit::group_page& page) {
    json groups = json::array();
    for (const auto& g : page.groups) {
        groups.push_back({{"name", g.name},
                          {"waiting", g.waiting},
                          {"active", g.active},
                          {"paused", g.paused},
                          {"concurrency", g.concurrency ? json(*g.concurrency) : json()},
                          {"held_until", g.held_until ? json(ms_since_epoch(*g.held_until)) : json()}});
    }
    json limit;
    if (page.rate_limit) limit = {{"max", page.rate_limit->max}, {"per_ms", page.rate_limit->per.count()}};
    return {{"total", page.total},
            {"concurrency", page.concurrency ? json(*page.concurrency) : json()},
            {"rate_limit", limit},
            {"groups", groups}};
}

class board {
public:
    board(tool& t, board_options o) : tool_(t), options_(std::move(o)) {
        if (!is_loopback_name(options_.bind) && options_.token.empty()) {
            throw usage_error("serving on " + options_.bind +
                              " needs a token (--token or $REDKIT_BOARD_TOKEN): the board can retry and remove jobs");
        }
        if (options_.port < 0 || options_.port > 65535) throw usage_error("--port must be in [0, 65535]");
        routes();
    }

    // Listens until SIGINT or SIGTERM. Prints the address first (the port when 0 was asked).
    int run() {
        int port = options_.port;
        if (port == 0) {
            port = server_.bind_to_any_port(options_.bind);
            if (port < 0) throw usage_error("cannot listen on " + options_.bind);
        } else if (!server_.bind_to_port(options_.bind, port)) {
            throw usage_error("cannot listen on " + options_.bind + ":" + std::to_string(port));
        }
        // the signals go to a thread of their own, which stops the server
        sigset_t stop_signals;
        sigemptyset(&stop_signals);
        sigaddset(&stop_signals, SIGINT);
        sigaddset(&stop_signals, SIGTERM);
        pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
        std::thread stopper([this, stop_signals] {
            int sig = 0;
            sigwait(&stop_signals, &sig);
            server_.stop();
        });
        const std::string shown =
            options_.bind.find(':') != std::string::npos ? "[" + options_.bind + "]" : options_.bind;
        std::printf("redkit-queue: board on http://%s:%d/%s\n", shown.c_str(), port,
                    options_.token.empty() ? "" : "?token=...");
        std::fflush(stdout);
        const bool ok = server_.listen_after_bind();
        pthread_kill(stopper.native_handle(), SIGTERM);  // ends the sigwait when stop came otherwise
        stopper.join();
        return ok ? 0 : 1;
    }

private:
    using request = httplib::Request;
    using response = httplib::Response;

    static void reply(response& res, int status, const json& body) {
        res.status = status;
        res.set_content(dump(body), "application/json");
    }
    static void refuse(response& res, int status, const std::string& why) { reply(res, status, {{"error", why}}); }

    static std::string param(const request& req, const char* name) {
        if (!req.has_param(name)) throw std::invalid_argument(std::string("missing parameter '") + name + "'");
        return req.get_param_value(name);
    }
    // A decimal parameter in [min, max], or `fallback` when absent; else std::invalid_argument (400).
    static std::size_t number(const request& req, const char* name, std::size_t fallback, std::size_t min,
                              std::size_t max) {
        if (!req.has_param(name)) return fallback;
        const std::string v = req.get_param_value(name);
        std::size_t n = 0;
        for (char c : v) {
            if (c < '0' || c > '9' || n > max) throw std::invalid_argument(std::string("bad parameter '") + name + "'");
            n = n * 10 + static_cast<std::size_t>(c - '0');
        }
        if (v.empty() || n < min || n > max) throw std::invalid_argument(std::string("bad parameter '") + name + "'");
        return n;
    }

    // Runs an API handler: a missing queue or job is 404, a bad parameter 400, Redis trouble 502.
    template <class F>
    httplib::Server::Handler api(F f) {
        return [f](const request& req, response& res) {
            try {
                f(req, res);
            } catch (const usage_error& e) {
                refuse(res, 404, e.what());
            } catch (const std::invalid_argument& e) {
                refuse(res, 400, e.what());
            } catch (const std::exception& e) {
                refuse(res, 502, e.what());
            }
        };
    }

    httplib::Server::HandlerResponse guard(const request& req, response& res) const {
        res.set_header("X-Content-Type-Options", "nosniff");
        res.set_header("X-Frame-Options", "DENY");
        res.set_header("Referrer-Policy", "no-referrer");
        res.set_header("Cache-Control", "no-store");
        if (is_loopback_name(options_.bind) && !is_loopback_host(req.get_header_value("Host"))) {
            refuse(res, 403, "this board answers only requests to a loopback address");
            return httplib::Server::HandlerResponse::Handled;
        }
        if (!options_.token.empty()) {
            const std::string auth = req.get_header_value("Authorization");
            const std::string given = auth.rfind("Bearer ", 0) == 0 ? auth.substr(7)
                                      : req.has_param("token")      ? req.get_param_value("token")
                                                                    : std::string();
            if (!same_secret(given, options_.token)) {
                refuse(res, 401, "a token is needed (Authorization: Bearer <token>, or ?token=<token>)");
                return httplib::Server::HandlerResponse::Handled;
            }
        }
        if (req.method == "POST" && req.get_header_value("X-Redkit-Board") != "1") {
            refuse(res, 403, "POST needs the header X-Redkit-Board: 1");
            return httplib::Server::HandlerResponse::Handled;
        }
        return httplib::Server::HandlerResponse::Unhandled;
    }

    void routes() {
        server_.set_pre_routing_handler([this](const request& req, response& res) { return guard(req, res); });
        server_.set_exception_handler(
            [](const request&, response& res, std::exception_ptr) { refuse(res, 500, "internal error"); });
        server_.Get("/", [](const request&, response& res) {
            res.set_header("Content-Security-Policy",
                           "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                           "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'");
            res.set_content(std::string(board_page), "text/html; charset=utf-8");
        });
        server_.Get(
            "/api/queues", api([this](const request&, response& res) {
                json queues = json::array();
                for (const auto& name : tool_.queue_names()) {
                    redkit::queue<json> q(tool_.redis(), name, tool_.options());
                    queues.push_back({{"name", name}, {"paused", q.is_paused()}, {"counts", counts_json(q.counts())}});
                }
                reply(res, 200, {{"queues", queues}});
            }));
        server_.Get("/metrics", [this](const request&, response& res) {
            try {
                std::vector<queue_gauges> queues;
                for (const auto& name : tool_.queue_names()) {
                    queues.push_back(read_gauges(name, redkit::queue<json>(tool_.redis(), name, tool_.options())));
                }
                res.status = 200;
                res.set_content(prometheus_text(queues), "text/plain; version=0.0.4; charset=utf-8");
            } catch (const std::exception& e) {
                refuse(res, 502, e.what());
            }
        });
        server_.Get(
            "/api/metrics", api([this](const request& req, response& res) {
                const auto q = tool_.open(param(req, "queue"));
                const auto minutes = number(req, "minutes", 60, 1, 1440);
                json m = json::array();
                for (const auto& c : q.metrics(std::chrono::minutes(static_cast<long long>(minutes)))) {
                    m.push_back(
                        {{"minute",
                          std::chrono::duration_cast<std::chrono::milliseconds>(c.minute.time_since_epoch()).count()},
                         {"completed", c.completed},
                         {"failed", c.failed}});
                }
                reply(res, 200, {{"minutes", m}});
            }));
        server_.Get("/api/jobs", api([this](const request& req, response& res) {
                        const auto q = tool_.open(param(req, "queue"));
                        const auto state = parse_state(param(req, "state"));
                        const auto offset = number(req, "offset", 0, 0, 1u << 30);
                        const auto count = number(req, "count", 20, 1, 1000);
                        const bool newest_first = req.get_param_value("oldest") != "1";
                        const bool grouped = req.has_param("group");
                        if (grouped && state != job_state::waiting) {
                            throw std::invalid_argument("group lists waiting jobs only");
                        }
                        // (an unknown group's line is empty, as the page polls it while the group empties)
                        const auto page = grouped ? q.group_jobs(param(req, "group"), offset, count, newest_first)
                                                  : q.jobs(state, offset, count, newest_first);
                        json jobs = json::array();
                        for (const auto& j : page.jobs) jobs.push_back(job_summary(j));
                        reply(res, 200, {{"total", page.total}, {"jobs", jobs}, {"now", tool_.server_now_ms()}});
                    }));
        server_.Get("/api/job", api([this](const request& req, response& res) {
                        const auto q = tool_.open(param(req, "queue"));
                        const auto id = param(req, "id");
                        const auto j = q.get_job(id);
                        if (!j) throw usage_error("no job '" + id + "'");
                        json out = job_detail(*j, q);
                        out["now"] = tool_.server_now_ms();
                        reply(res, 200, out);
                    }));
        server_.Get("/api/groups", api([this](const request& req, response& res) {
                        const auto q = tool_.open(param(req, "queue"));
                        const auto page =
                            q.groups(number(req, "offset", 0, 0, 1u << 30), number(req, "count", 20, 1, 1000));
                        json out = groups_json(page);
                        out["now"] = tool_.server_now_ms();
                        reply(res, 200, out);
                    }));
        server_.Post("/api/retry", api([this](const request& req, response& res) {
                         auto q = tool_.open(param(req, "queue"));
                         const auto id = param(req, "id");
                         if (!q.retry(id)) throw usage_error("no failed job '" + id + "'");
                         reply(res, 200, {{"retried", id}});
                     }));
        server_.Post("/api/retry-all", api([this](const request& req, response& res) {
                         reply(res, 200, {{"retried", tool_.open(param(req, "queue")).retry_failed()}});
                     }));
        server_.Post("/api/clean", api([this](const request& req, response& res) {
                         auto q = tool_.open(param(req, "queue"));
                         const std::string state = param(req, "state");
                         if (state != "completed" && state != "failed") {
                             throw std::invalid_argument("state must be completed or failed");
                         }
                         // up to ten years
                         const auto grace = number(req, "grace", 0, 0, 315360000000);
                         const auto n =
                             q.clean(parse_state(state), std::chrono::milliseconds(static_cast<long long>(grace)));
                         reply(res, 200, {{"removed", n}});
                     }));
        server_.Post("/api/remove", api([this](const request& req, response& res) {
                         auto q = tool_.open(param(req, "queue"));
                         const auto id = param(req, "id");
                         const auto r = q.remove(id);
                         if (r == redkit::remove_result::not_found) throw usage_error("no job '" + id + "'");
                         if (r == redkit::remove_result::active) {
                             refuse(res, 409, "job " + id + " is running; not removed");
                             return;
                         }
                         reply(res, 200, {{"removed", id}});
                     }));
        server_.Post("/api/cancel", api([this](const request& req, response& res) {
                         auto q = tool_.open(param(req, "queue"));
                         const auto id = param(req, "id");
                         const std::string reason =
                             req.has_param("reason") ? req.get_param_value("reason") : "from the board";
                         if (reason.size() > 1024) throw std::invalid_argument("reason must be at most 1024 bytes");
                         const auto r = q.cancel(id, reason);
                         if (r == redkit::cancel_result::not_found) throw usage_error("no job '" + id + "'");
                         if (r == redkit::cancel_result::not_running) {
                             refuse(res, 409, "job " + id + " is not running; not cancelled");
                             return;
                         }
                         reply(res, 200, {{"cancelled", id}});
                     }));
        server_.Post("/api/pause", api([this](const request& req, response& res) {
                         tool_.open(param(req, "queue")).pause();
                         reply(res, 200, {{"paused", true}});
                     }));
        server_.Post("/api/resume", api([this](const request& req, response& res) {
                         tool_.open(param(req, "queue")).resume();
                         reply(res, 200, {{"paused", false}});
                     }));
        // pausing a group that is not listed is allowed: it pauses it ahead of its jobs
        server_.Post("/api/pause-group", api([this](const request& req, response& res) {
                         auto q = tool_.open(param(req, "queue"));
                         const auto group = param(req, "group");
                         q.pause_group(group);
                         reply(res, 200, {{"group", group}, {"paused", true}});
                     }));
        server_.Post("/api/resume-group", api([this](const request& req, response& res) {
                         auto q = tool_.open(param(req, "queue"));
                         const auto group = param(req, "group");
                         if (!q.group(group)) throw usage_error("no group '" + group + "'");
                         q.resume_group(group);
                         reply(res, 200, {{"group", group}, {"paused", false}});
                     }));
    }

    tool& tool_;
    board_options options_;
    httplib::Server server_;
};

}  // namespace redkit_queue
