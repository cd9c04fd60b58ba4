// SPDX-License-Identifier: MIT
// The web board of redkit-queue (redkit-queue serve) in a real browser: Debian's headless
// Chromium, driven through ChromeDriver's WebDriver HTTP API, against a real queue on a private
// redis-server. What the page shows must match the queue (counts, lists, the chart's totals, a
// job's detail, when a delayed job is due), it must fit a 1280 x 800 window, its Retry, Remove,
// Retry all and Clean buttons must act (Clean once confirmed), job data must stay text (no HTML),
// and the server must refuse foreign Host headers, POSTs without its header, requests without the
// token, and a non-loopback address without a token. REDKIT_BOARD_SCREENSHOT=<file> saves a
// screenshot (the docs' queue-tools page).
#include <redkit/queue.hpp>

#include "support/eventually.hpp"
#include "support/fresh_database.hpp"
#include "support/prometheus_text.hpp"
#include "support/queue_options.hpp"
#include "support/redis_server.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <functional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace std::chrono_literals;
using json = nlohmann::json;
using redkit_test::shared_server;

namespace {

// A child process (its stdout on a pipe), killed and reaped on destruction.
class process {
public:
    explicit process(std::vector<std::string> argv) {
        int out[2];
        if (::pipe(out) != 0) throw std::runtime_error("pipe failed");
        pid_ = ::fork();
        if (pid_ == 0) {
            ::dup2(out[1], 1);
            ::close(out[0]);
            ::close(out[1]);
            std::vector<char*> args;
            for (auto& a : argv) args.push_back(a.data());
            args.push_back(nullptr);
            ::execv(args[0], args.data());
            ::_exit(127);
        }
        ::close(out[1]);
        out_ = out[0];
    }
    process(const process&) = delete;
    process& operator=(const process&) = delete;
    ~process() {
        if (out_ >= 0) ::close(out_);
        if (pid_ > 0 && status_ < 0) {
            ::kill(pid_, SIGTERM);
            if (!wait_exit(5s)) {
                ::kill(pid_, SIGKILL);
                ::waitpid(pid_, nullptr, 0);
            }
        }
    }

    // The first line it prints (empty at end of output).
    std::string line() {
        std::string s;
        char c = 0;
        while (::read(out_, &c, 1) == 1 && c != '\n') s += c;
        return s;
    }

    // Waits for it to exit; its exit status, or -1 if it is still running after `limit`.
    bool wait_exit(std::chrono::milliseconds limit) {
        const auto until = std::chrono::steady_clock::now() + limit;
        while (std::chrono::steady_clock::now() < until) {
            int st = 0;
            if (::waitpid(pid_, &st, WNOHANG) == pid_) {
                status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
                return true;
            }
            std::this_thread::sleep_for(10ms);
        }
        return false;
    }
    int status() const noexcept { return status_; }

private:
    pid_t pid_ = -1;
    int out_ = -1;
    int status_ = -1;
};

int free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(fd);
    return ntohs(a.sin_port);
}

std::string base64_decode(const std::string& in) {
    static const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    unsigned bits = 0;
    int have = 0;
    for (char c : in) {
        const auto v = alphabet.find(c);
        if (v == std::string::npos) continue;  // '=' padding, line breaks
        bits = (bits << 6) | static_cast<unsigned>(v);
        have += 6;
        if (have >= 8) {
            have -= 8;
            out += static_cast<char>((bits >> have) & 0xFFu);
        }
    }
    return out;
}

bool eventually(const std::function<bool()>& done, std::chrono::milliseconds limit = 15s) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (!done()) {
        if (std::chrono::steady_clock::now() > until) return false;
        std::this_thread::sleep_for(50ms);
    }
    return true;
}

// redkit-queue serve on a free loopback port, with extra arguments; port() is the one it printed.
class board_server {
public:
    explicit board_server(std::vector<std::string> extra = {})
        : proc_([&] {
              std::vector<std::string> argv{REDKIT_QUEUE_TOOL, "--url", shared_server().url(), "serve", "--port", "0"};
              argv.insert(argv.end(), extra.begin(), extra.end());
              return argv;
          }()) {
        const std::string first = proc_.line();  // "redkit-queue: board on http://127.0.0.1:PORT/..."
        const auto colon = first.rfind(':');
        if (first.find("board on http://127.0.0.1:") == std::string::npos || colon == std::string::npos) {
            throw std::runtime_error("redkit-queue serve did not start: '" + first + "'");
        }
        port_ = std::stoi(first.substr(colon + 1));
    }
    int port() const noexcept { return port_; }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/"; }

private:
    process proc_;
    int port_ = 0;
};

// A WebDriver session of headless Chromium through ChromeDriver.
class browser {
public:
    browser() : driver_port_(free_port()), driver_({CHROMEDRIVER, "--port=" + std::to_string(driver_port_)}) {
        http_.set_read_timeout(60, 0);
        if (!eventually([&] {
                auto r = http_.Get("/status");
                return r && r->status == 200 && json::parse(r->body)["value"]["ready"] == true;
            })) {
            throw std::runtime_error("chromedriver did not come up");
        }
        const json caps = {{"capabilities",
                            {{"alwaysMatch",
                              {{"browserName", "chrome"},
                               {"goog:chromeOptions",
                                {{"binary", CHROMIUM},
                                 {"args",
                                  {"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                                   "--window-size=1400,900", "--hide-scrollbars"}}}}}}}}};
        session_ = call("POST", "/session", caps)["sessionId"].get<std::string>();
    }
    browser(const browser&) = delete;
    browser& operator=(const browser&) = delete;
    ~browser() {
        if (!session_.empty()) http_.Delete(("/session/" + session_).c_str());
    }

    void go(const std::string& url) { call("POST", at("/url"), {{"url", url}}); }
    json script(const std::string& body) {
        return call("POST", at("/execute/sync"), {{"script", body}, {"args", json::array()}});
    }
    // Clicks the element the CSS selector finds (a real click, through the browser's input).
    // The page redraws its lists every second: an element not there yet, or replaced between
    // finding and clicking it, is looked for again, for up to 10 s.
    void click(const std::string& css) {
        const auto until = std::chrono::steady_clock::now() + 10s;
        for (;;) {
            try {
                const json e = call("POST", at("/element"), {{"using", "css selector"}, {"value", css}});
                const std::string id = e.begin().value().get<std::string>();
                call("POST", at("/element/" + id + "/click"), json::object());
                return;
            } catch (const std::runtime_error& e) {
                const std::string what = e.what();
                const bool again = what.find("stale element") != std::string::npos ||
                                   what.find("no such element") != std::string::npos;
                if (!again || std::chrono::steady_clock::now() > until) throw;
                std::this_thread::sleep_for(50ms);
            }
        }
    }
    std::string screenshot_png() { return base64_decode(call("GET", at("/screenshot"), nullptr).get<std::string>()); }
    // Sets the window's outer size (headless: the viewport's).
    void window(int width, int height) { call("POST", at("/window/rect"), {{"width", width}, {"height", height}}); }
    // The text of the dialog the page opened (window.confirm), waiting up to 10 s for it.
    std::string dialog_text() {
        const auto until = std::chrono::steady_clock::now() + 10s;
        for (;;) {
            try {
                return call("GET", at("/alert/text"), nullptr).get<std::string>();
            } catch (const std::runtime_error& e) {
                if (std::string(e.what()).find("no such alert") == std::string::npos ||
                    std::chrono::steady_clock::now() > until) {
                    throw;
                }
                std::this_thread::sleep_for(50ms);
            }
        }
    }
    // Answers the open dialog: OK (accept) or Cancel.
    void answer_dialog(bool accept) { call("POST", at(accept ? "/alert/accept" : "/alert/dismiss"), json::object()); }

private:
    std::string at(const std::string& path) const { return "/session/" + session_ + path; }
    json call(const std::string& method, const std::string& path, const json& body) {
        httplib::Result r =
            method == "GET" ? http_.Get(path.c_str()) : http_.Post(path.c_str(), body.dump(), "application/json");
        if (!r) throw std::runtime_error("webdriver: no reply to " + path);
        const json j = json::parse(r->body);
        if (r->status != 200) throw std::runtime_error("webdriver: " + path + ": " + r->body);
        return j["value"];
    }

    int driver_port_;
    process driver_;
    httplib::Client http_{"127.0.0.1", driver_port_};
    std::string session_;
};

class Board : public redkit_test::fresh_database {
protected:
    // Runs every job of `q` now; a job whose data has "fail" fails (once per attempt).
    static void run_all(redkit::queue<json>& q, long long completed, long long failed) {
        redkit::worker<json> w(q, [](redkit::job<json>& j) {
            if (j.data().contains("fail")) throw std::runtime_error(j.data()["fail"].get<std::string>());
            return json{{"ok", true}};
        });
        ASSERT_TRUE(eventually([&] {
            const auto c = q.counts();
            return c.completed == completed && c.failed == failed;
        })) << q.counts().completed
            << " completed, " << q.counts().failed << " failed";
        EXPECT_TRUE(w.close(5s));
    }

    // A delayed job's due time (ms) as the queue holds it: its score in the delayed set.
    long long due_of(const std::string& queue, const std::string& id) {
        return std::stoll(redis.command<std::string>("ZSCORE", "queue:{" + queue + "}:delayed", id));
    }
};

// A time as the board shows it: "2024-05-01 12:00:00" (UTC).
std::string board_time(long long ms) {
    const std::time_t s = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    gmtime_r(&s, &tm);
    char buf[40];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
    return buf;
}

}  // namespace

// A queue with completed, failed, waiting, delayed and flow jobs: the board shows what the queue
// holds, and its buttons retry and remove.
TEST_F(Board, ShowsTheQueueAndItsButtonsAct) {
    redkit::queue<json> q(redis, "board-orders");
    redkit::job_options once;
    once.attempts = 1;
    for (int i = 0; i < 6; ++i) {
        (void)q.add("ship", json{{"order", 1000 + i}, {"sku", i % 3 == 0 ? "BROKEN" : "A-" + std::to_string(i)}}, once);
    }
    {
        redkit::worker<json> w(q, [](redkit::job<json>& j) {
            j.log("packing order " + std::to_string(j.data()["order"].get<int>()));
            if (j.data()["sku"] == "BROKEN") throw std::runtime_error("warehouse: unknown sku");
            return json{{"tracking", "TRK" + std::to_string(j.data()["order"].get<int>())}};
        });
        ASSERT_TRUE(eventually([&] { return q.counts().completed == 4 && q.counts().failed == 2; }));
        EXPECT_TRUE(w.close(5s));
    }
    const std::string hostile = "<img src=x onerror=\"document.title='owned'\">";
    for (int i = 0; i < 3; ++i) (void)q.add("ship", json{{"order", 2000 + i}, {"note", hostile}});
    redkit::job_options later;
    later.delay = 1h;
    (void)q.add("reminder", json{{"order", 1001}}, later);
    redkit::flow_job invoice{"invoice", {{"order", 1042}}};
    invoice.children.push_back({"pick", {{"sku", "A-1"}}, "board-warehouse"});
    (void)q.add_flow(invoice);

    board_server server;
    browser chrome;
    chrome.go(server.url() + "#queue=board-orders&state=failed");

    // the counts shown are the queue's, state by state
    const auto shown_counts = [&] {
        return chrome.script(
            "const o = {}; document.querySelectorAll('[data-count]').forEach(e => o[e.dataset.count] = "
            "Number(e.textContent)); return o;");
    };
    const auto matches = [&](const redkit::job_counts& c) {
        const json s = shown_counts();
        return s.value("waiting", -1) == c.waiting && s.value("active", -1) == c.active &&
               s.value("delayed", -1) == c.delayed && s.value("prioritized", -1) == c.prioritized &&
               s.value("completed", -1) == c.completed && s.value("failed", -1) == c.failed &&
               s.value("waiting-children", -1) == c.waiting_children;
    };
    ASSERT_TRUE(eventually([&] { return matches(q.counts()); })) << shown_counts().dump();
    EXPECT_EQ(shown_counts()["failed"], 2);
    EXPECT_EQ(shown_counts()["waiting"], 3);

    // the queue list, the failed list and the chart's totals
    const json queues =
        chrome.script("return [...document.querySelectorAll('#queues tbody tr')].map(r => r.dataset.queue);");
    EXPECT_EQ(queues, json({"board-orders", "board-warehouse"}));
    const auto listed = [&] {
        return chrome.script("return [...document.querySelectorAll('#jobs tbody tr')].map(r => r.dataset.jobId);");
    };
    json failed_ids = json::array();
    for (const auto& j : q.jobs(redkit::job_state::failed).jobs) failed_ids.push_back(j.id());
    ASSERT_EQ(failed_ids.size(), 2u);
    ASSERT_TRUE(eventually([&] { return listed() == failed_ids; })) << listed().dump();
    ASSERT_TRUE(eventually([&] {
        return chrome.script("return document.getElementById('chart-caption').textContent;")
                   .get<std::string>()
                   .find("4 completed, 2 failed") != std::string::npos;
    }));
    EXPECT_GE(chrome.script("return document.querySelectorAll('#chart rect').length;").get<int>(), 1);

    // hostile data stays text
    chrome.click("[data-state='waiting']");
    ASSERT_TRUE(eventually([&] { return listed().size() == 3; }));
    EXPECT_EQ(chrome.script("return document.querySelectorAll('#jobs img').length;"), 0);
    EXPECT_NE(chrome.script("return document.querySelector('#jobs tbody').textContent;")
                  .get<std::string>()
                  .find("<img src=x"),
              std::string::npos);
    EXPECT_NE(chrome.script("return document.title;"), "owned");

    // a job's detail: click its row
    chrome.click("[data-state='completed']");
    const std::string done_id = q.jobs(redkit::job_state::completed).jobs.front().id();
    ASSERT_TRUE(eventually([&] { return listed().size() == 4; }));
    chrome.click("tr[data-job-id='" + done_id + "']");
    ASSERT_TRUE(eventually([&] {
        const json d = chrome.script(
            "const f = n => { const e = document.querySelector('#detail [data-field=' + n + ']'); return e ? "
            "e.textContent : null; }; return {state: f('state'), data: f('data')};");
        return d["state"] == "completed" && d["data"].is_string() &&
               d["data"].get<std::string>().find(std::to_string(q.get_job(done_id)->data()["order"].get<int>())) !=
                   std::string::npos;
    }));

    if (const char* path = std::getenv("REDKIT_BOARD_SCREENSHOT")) {
        chrome.click("[data-state='failed']");
        chrome.click("tr[data-job-id='" + failed_ids[0].get<std::string>() + "']");
        std::this_thread::sleep_for(1500ms);
        std::ofstream(path, std::ios::binary) << chrome.screenshot_png();
    }
    const std::string png = chrome.screenshot_png();
    ASSERT_GT(png.size(), 1000u);
    EXPECT_EQ(png.substr(1, 3), "PNG");

    // Retry: the job goes back in line, and the board follows
    chrome.click("[data-state='failed']");
    ASSERT_TRUE(eventually([&] { return listed() == failed_ids; }));
    const std::string retried = failed_ids[0], removed = failed_ids[1];
    chrome.click("button[data-action='retry'][data-job-id='" + retried + "']");
    ASSERT_TRUE(eventually([&] { return q.get_job(retried)->state() == redkit::job_state::waiting; }));
    ASSERT_TRUE(eventually([&] { return shown_counts()["failed"] == 1 && shown_counts()["waiting"] == 4; }))
        << shown_counts().dump();

    // Remove asks twice, then removes
    ASSERT_TRUE(eventually([&] { return listed() == json{removed}; })) << listed().dump();
    chrome.click("#jobs button[data-action='remove'][data-job-id='" + removed + "']");
    std::this_thread::sleep_for(300ms);
    EXPECT_TRUE(q.get_job(removed)) << "one click only asks";
    chrome.click("#jobs button[data-action='remove'][data-job-id='" + removed + "']");
    ASSERT_TRUE(eventually([&] { return !q.get_job(removed); }));
    ASSERT_TRUE(eventually([&] { return listed().empty() && matches(q.counts()); }));
}

// The server's guards, without a browser.
TEST_F(Board, RefusesForeignHostsCrossSitePostsMissingTokensAndOpenBindsWithoutAToken) {
    redkit::queue<json> q(redis, "guarded");
    redkit::job_options once;
    once.attempts = 1;
    (void)q.add("x", 1);
    {
        board_server server;
        httplib::Client c("127.0.0.1", server.port());
        auto r = c.Get("/api/queues");
        ASSERT_TRUE(r);
        EXPECT_EQ(r->status, 200);
        EXPECT_EQ(json::parse(r->body)["queues"][0]["counts"]["waiting"], 1);
        r = c.Get("/api/queues", {{"Host", "evil.example:80"}});
        ASSERT_TRUE(r);
        EXPECT_EQ(r->status, 403) << "DNS rebinding: a foreign Host is refused";
        r = c.Post("/api/pause?queue=guarded", "", "text/plain");
        ASSERT_TRUE(r);
        EXPECT_EQ(r->status, 403) << "a POST without X-Redkit-Board is refused";
        EXPECT_FALSE(q.is_paused());
        r = c.Post("/api/pause?queue=guarded", {{"X-Redkit-Board", "1"}}, "", "text/plain");
        ASSERT_TRUE(r);
        EXPECT_EQ(r->status, 200);
        EXPECT_TRUE(q.is_paused());
        // retry-all and clean: the same guards, then they act
        redis.command<long long>("ZADD", "queue:{guarded}:failed", 1, "f1");
        redis.command<long long>("HSET", "queue:{guarded}:job:f1", "name", "x", "data", "1", "st", "f", "ft", 1);
        for (const char* post : {"/api/retry-all?queue=guarded", "/api/clean?queue=guarded&state=failed"}) {
            r = c.Post(post, "", "text/plain");
            ASSERT_TRUE(r);
            EXPECT_EQ(r->status, 403) << post << ": a POST without X-Redkit-Board is refused";
            r = c.Post(post, {{"Host", "evil.example"}, {"X-Redkit-Board", "1"}}, "", "text/plain");
            ASSERT_TRUE(r);
            EXPECT_EQ(r->status, 403) << post << ": a foreign Host is refused";
            EXPECT_EQ(q.counts().failed, 1) << post;
        }
        for (const char* bad :
             {"/api/clean?queue=guarded&state=waiting", "/api/clean?queue=guarded&state=failed&grace=x",
              "/api/clean?queue=guarded&state=failed&grace=-1", "/api/clean?queue=guarded"}) {
            r = c.Post(bad, {{"X-Redkit-Board", "1"}}, "", "text/plain");
            ASSERT_TRUE(r);
            EXPECT_EQ(r->status, 400) << bad;
        }
        r = c.Post("/api/clean?queue=nope&state=failed", {{"X-Redkit-Board", "1"}}, "", "text/plain");
        ASSERT_TRUE(r);
        EXPECT_EQ(r->status, 404);
        r = c.Post("/api/clean?queue=guarded&state=failed&grace=3600000", {{"X-Redkit-Board", "1"}}, "", "text/plain");
        ASSERT_TRUE(r);
        EXPECT_EQ(r->status, 200);
        EXPECT_EQ(json::parse(r->body)["removed"], 1) << "finished at 1 ms after the epoch: over an hour ago";
        EXPECT_EQ(q.counts().failed, 0);
        r = c.Get("/api/jobs?queue=nope&state=failed");
        ASSERT_TRUE(r);
        EXPECT_EQ(r->status, 404);
        r = c.Get("/api/jobs?queue=guarded&state=bogus");
        ASSERT_TRUE(r);
        EXPECT_EQ(r->status, 404);
        for (const char* bad :
             {"/api/jobs?queue=guarded&state=waiting&count=abc", "/api/jobs?queue=guarded&state=waiting&count=0",
              "/api/jobs?queue=guarded&state=waiting&offset=99999999999999999999",
              "/api/metrics?queue=guarded&minutes=0", "/api/job?queue=guarded"}) {
            r = c.Get(bad);
            ASSERT_TRUE(r);
            EXPECT_EQ(r->status, 400) << bad;
        }
        // a payload that is not UTF-8 still comes out as JSON (the bad bytes replaced)
        redis.command<long long>("HSET", "queue:{guarded}:job:1", "data", std::string("\xff\xfe<b>", 5));
        r = c.Get("/api/job?queue=guarded&id=1");
        ASSERT_TRUE(r);
        EXPECT_EQ(r->status, 200);
        EXPECT_EQ(json::parse(r->body)["data"], "\xEF\xBF\xBD\xEF\xBF\xBD<b>");
    }
    {
        board_server server({"--token", "s3cret"});
        httplib::Client c("127.0.0.1", server.port());
        auto r = c.Get("/api/queues");
        ASSERT_TRUE(r);
        EXPECT_EQ(r->status, 401);
        r = c.Get("/api/queues", {{"Authorization", "Bearer wrong"}});
        ASSERT_TRUE(r);
        EXPECT_EQ(r->status, 401);
        r = c.Get("/api/queues", {{"Authorization", "Bearer s3cret"}});
        ASSERT_TRUE(r);
        EXPECT_EQ(r->status, 200);
        for (const char* post : {"/api/retry-all?queue=guarded", "/api/clean?queue=guarded&state=completed"}) {
            r = c.Post(post, {{"X-Redkit-Board", "1"}}, "", "text/plain");
            ASSERT_TRUE(r);
            EXPECT_EQ(r->status, 401) << post;
            r = c.Post(post, {{"X-Redkit-Board", "1"}, {"Authorization", "Bearer s3cret"}}, "", "text/plain");
            ASSERT_TRUE(r);
            EXPECT_EQ(r->status, 200) << post;
        }
        r = c.Get("/?token=s3cret");
        ASSERT_TRUE(r);
        EXPECT_EQ(r->status, 200);
        EXPECT_NE(r->body.find("redkit board"), std::string::npos);
    }
    // beyond loopback only with a token: refused before listening
    process open({REDKIT_QUEUE_TOOL, "--url", shared_server().url(), "serve", "--port", "0", "--bind", "0.0.0.0"});
    ASSERT_TRUE(open.wait_exit(10s));
    EXPECT_EQ(open.status(), 2);
}

// On loopback the board answers only a Host that is a loopback name or address (a DNS rebinding
// page's name is refused, however much it looks like one), with or without a port.
TEST_F(Board, AnswersOnlyLoopbackHostNames) {
    redkit::queue<json> q(redis, "hosted");
    (void)q.add("x", 1);
    board_server server;
    httplib::Client c("127.0.0.1", server.port());
    const std::string port = std::to_string(server.port());
    const auto status = [&](const std::string& host) {
        const auto r = c.Get("/api/queues", {{"Host", host}});
        return r ? r->status : -1;
    };
    const std::vector<std::string> loopback = {
        "127.0.0.1:" + port, "127.0.0.1",       "localhost:" + port, "localhost", "LocalHost:" + port,
        "127.0.0.2:" + port, "127.255.255.254", "[::1]:" + port,     "[::1]",     "[0:0:0:0:0:0:0:1]:" + port};
    for (const auto& host : loopback) EXPECT_EQ(status(host), 200) << host;
    const std::vector<std::string> foreign = {"127.0.0.1.attacker.example",
                                              "127.0.0.1.attacker.example:" + port,
                                              "127.1",
                                              "127.1:" + port,
                                              "0x7f.0.0.1",
                                              "127.0.0.1evil",
                                              "127.0.0.01",
                                              "127.0.0.256",
                                              "127.0.0.1.5",
                                              "localhost.attacker.example",
                                              "localhost.attacker.example:" + port,
                                              "localhostx",
                                              "[::1].evil",
                                              "[::1]evil",
                                              "[::1]:" + port + "x",
                                              "[::2]",
                                              "::1",
                                              "[::ffff:8.8.8.8]",
                                              "127.0.0.1:" + port + ".attacker.example",
                                              "127.0.0.1:",
                                              "127.0.0.1:99999",
                                              "127.0.0.1:-1",
                                              "localhost:80:80",
                                              "evil.example"};
    for (const auto& host : foreign) EXPECT_EQ(status(host), 403) << host;
}

// A delayed job shows when it is due, in the list of delayed jobs and in its panel: the UTC time
// from the delayed set's score and how long from now ("in 60 min"), for a delay and for a retry's
// backoff alike (which created + delay would get wrong).
TEST_F(Board, DelayedJobsShowWhenTheyAreDueInUtcAndFromNow) {
    redkit::queue<json> q(redis, "board-later");
    redkit::job_options hour;
    hour.delay = 1h;
    const std::string delayed = q.add("remind", json{{"order", 1}}, hour).id;
    redkit::job_options retried;
    retried.attempts = 2;
    retried.backoff = redkit::backoff_policy::fixed(3h);
    const std::string backing_off = q.add("charge", json{{"fail", "card declined"}}, retried).id;
    {
        redkit::worker<json> w(q, [](redkit::job<json>&) -> json { throw std::runtime_error("card declined"); });
        ASSERT_TRUE(eventually([&] { return q.counts().delayed == 2; }));
        EXPECT_TRUE(w.close(5s));
    }

    board_server server;
    browser chrome;
    chrome.go(server.url() + "#queue=board-later&state=delayed");
    const auto row = [&](const std::string& id) {
        const json t = chrome.script("const r = document.querySelector(\"#jobs tr[data-job-id='" + id +
                                     "']\"); return r ? r.textContent : '';");
        return t.get<std::string>();
    };
    const auto shows = [&](const std::string& text, const std::string& part) {
        return text.find(part) != std::string::npos;
    };
    ASSERT_TRUE(eventually([&] {
        return shows(row(delayed), board_time(due_of("board-later", delayed))) && shows(row(delayed), "in 60 min");
    })) << row(delayed)
        << " (due " << board_time(due_of("board-later", delayed)) << ")";
    ASSERT_TRUE(eventually([&] {
        return shows(row(backing_off), board_time(due_of("board-later", backing_off))) &&
               shows(row(backing_off), "in 3 h");
    })) << row(backing_off)
        << " (due " << board_time(due_of("board-later", backing_off)) << ")";
    EXPECT_EQ(chrome.script("return document.querySelector('#jobs thead').textContent.includes('due');"), true);

    chrome.click("tr[data-job-id='" + backing_off + "']");
    const auto due_field = [&] {
        return chrome
            .script("const e = document.querySelector('#detail [data-field=due]'); return e ? e.textContent : '';")
            .get<std::string>();
    };
    ASSERT_TRUE(eventually([&] {
        const std::string d = due_field();
        return shows(d, board_time(due_of("board-later", backing_off))) && shows(d, "UTC") && shows(d, "in 3 h");
    })) << due_field();
}

// At 1280 x 800 nothing is wider than the window: not the page, not the job list's panel, not the
// job's panel; and every time shown stays on one line.
TEST_F(Board, FitsA1280By800WindowWithEveryTimeOnOneLine) {
    redkit::queue<json> q(redis, "board-invoices-europe-west");
    redkit::job_options once;
    once.attempts = 1;
    for (int i = 0; i < 4; ++i) {
        once.job_id = "invoice-2024-05-000" + std::to_string(i) + "-customer-reminder";
        (void)q.add("send-invoice-reminder-email",
                    json{{"customer", "ACME Corporation Europe West"}, {"invoice", 1000 + i}, {"lines", 42}}, once);
    }
    once.job_id = "invoice-2024-05-0009-customer-charge";
    (void)q.add("charge-card",
                json{{"fail", "payment provider: connection reset by peer while posting the invoice to the gateway"}},
                once);
    run_all(q, 4, 1);
    redkit::job_options later;
    later.delay = 90min;
    later.job_id = "invoice-2024-05-0010-customer-follow-up";
    (void)q.add("send-invoice-follow-up-email", json{{"customer", "ACME Corporation Europe West"}}, later);

    board_server server;
    browser chrome;
    chrome.window(1280, 800);
    EXPECT_EQ(chrome.script("return window.innerWidth;"), 1280);
    const std::string measure = R"js(
        const d = document.documentElement, list = document.getElementById('queue'),
              panel = document.getElementById('detail');
        // each time shown in the job list and the job's panel ("2024-05-01 12:00:00"), by the
        // lines its text takes
        const lines = [];
        for (const box of [document.getElementById('jobs'), panel]) {
          const walk = document.createTreeWalker(box, NodeFilter.SHOW_TEXT);
          for (let n = walk.nextNode(); n; n = walk.nextNode()) {
            const re = /\d{4}-\d\d-\d\d \d\d:\d\d:\d\d/g;
            for (let m = re.exec(n.data); m; m = re.exec(n.data)) {
              const r = document.createRange();
              r.setStart(n, m.index);
              r.setEnd(n, m.index + m[0].length);
              lines.push(new Set([...r.getClientRects()].map(x => Math.round(x.top))).size);
            }
          }
        }
        // the job list's cells of buttons, each holding them whole
        const cut = [...document.querySelectorAll('#jobs td')].filter(td =>
          td.querySelector('button') && td.scrollWidth > td.clientWidth).length;
        const queues = document.querySelector('nav.panel');
        return { page: [d.scrollWidth, d.clientWidth], list: [list.scrollWidth, list.clientWidth],
                 panel: [panel.scrollWidth, panel.clientWidth], queues: [queues.scrollWidth, queues.clientWidth],
                 cut, lines,
                 rows: document.querySelectorAll('#jobs tbody tr').length,
                 detail: !!document.querySelector('#detail [data-field=state]') };
    )js";
    for (const auto& [state, id] :
         {std::pair<std::string, std::string>{"completed", "invoice-2024-05-0002-customer-reminder"},
          {"failed", "invoice-2024-05-0009-customer-charge"},
          {"delayed", "invoice-2024-05-0010-customer-follow-up"}}) {
        SCOPED_TRACE(state);
        chrome.go(server.url() + "#queue=board-invoices-europe-west&state=" + state + "&job=" + id);
        ASSERT_TRUE(eventually([&] {
            const json m = chrome.script(measure);
            return m["rows"].get<int>() > 0 && m["detail"] == true;
        })) << chrome.script(measure).dump();
        const json m = chrome.script(measure);
        EXPECT_LE(m["page"][0], m["page"][1]) << "the page overflows: " << m.dump();
        EXPECT_LE(m["list"][0], m["list"][1]) << "the job list's panel overflows: " << m.dump();
        EXPECT_LE(m["panel"][0], m["panel"][1]) << "the job's panel overflows: " << m.dump();
        EXPECT_LE(m["queues"][0], m["queues"][1]) << "the queue list overflows: " << m.dump();
        EXPECT_EQ(m["cut"], 0) << "a button is cut off: " << m.dump();
        ASSERT_FALSE(m["lines"].empty()) << m.dump();
        for (const auto& n : m["lines"]) EXPECT_EQ(n, 1) << "a time wraps: " << m.dump();
    }
}

// "Retry all" and "Clean" do what the CLI's retry --all and clean do. Clean asks first
// (window.confirm): Cancel keeps the jobs, OK removes those its age choice covers. Both update
// the counts shown.
TEST_F(Board, RetryAllAndCleanActAndCleanAsksFirst) {
    redkit::queue<json> q(redis, "board-batch");
    redkit::job_options once;
    once.attempts = 1;
    for (int i = 0; i < 5; ++i) (void)q.add("ok", json{{"n", i}}, once);
    for (int i = 0; i < 3; ++i) (void)q.add("bad", json{{"fail", "boom " + std::to_string(i)}}, once);
    run_all(q, 5, 3);
    // two completed jobs finished two hours ago (their finish time is their score)
    const auto done = q.jobs(redkit::job_state::completed, 0, 10, false).jobs;
    ASSERT_EQ(done.size(), 5u);
    const auto two_hours_ago = std::to_string(done[0].finished_at() - 2 * 3600000);
    for (std::size_t i = 0; i < 2; ++i) {
        redis.command<long long>("ZADD", "queue:{board-batch}:completed", "XX", two_hours_ago, done[i].id());
    }

    board_server server;
    browser chrome;
    chrome.go(server.url() + "#queue=board-batch&state=completed");
    const auto shown = [&](const char* state) {
        return chrome.script(std::string("const e = document.querySelector(\"[data-count='") + state +
                             "']\"); return e ? Number(e.textContent) : -1;");
    };
    ASSERT_TRUE(eventually([&] { return shown("completed") == 5; }));
    // the list's tools show once its first page is drawn (a click before that finds nothing to click)
    ASSERT_TRUE(
        eventually([&] { return chrome.script("return !document.getElementById('list-tools').hidden;") == true; }));

    // Cancel: nothing removed
    chrome.click("#clean");
    const std::string asked = chrome.dialog_text();
    EXPECT_NE(asked.find("completed"), std::string::npos) << asked;
    EXPECT_NE(asked.find("board-batch"), std::string::npos) << asked;
    chrome.answer_dialog(false);
    std::this_thread::sleep_for(500ms);
    EXPECT_EQ(q.counts().completed, 5) << "a cancelled clean removes nothing";

    // only those finished over an hour ago
    chrome.click("#clean-grace option[value='3600000']");
    chrome.click("#clean");
    EXPECT_NE(chrome.dialog_text().find("1 h"), std::string::npos);
    chrome.answer_dialog(true);
    ASSERT_TRUE(eventually([&] { return q.counts().completed == 3; })) << q.counts().completed;
    EXPECT_FALSE(q.get_job(done[0].id()));
    EXPECT_FALSE(q.get_job(done[1].id()));
    EXPECT_TRUE(q.get_job(done[2].id()));
    ASSERT_TRUE(eventually([&] { return shown("completed") == 3; }));

    // then all of them
    chrome.click("#clean-grace option[value='0']");
    chrome.click("#clean");
    chrome.answer_dialog(true);
    ASSERT_TRUE(eventually([&] { return q.counts().completed == 0; }));
    EXPECT_EQ(redis.command<long long>("ZCARD", "queue:{board-batch}:completed"), 0);
    for (const auto& j : done) EXPECT_FALSE(redis.command<long long>("EXISTS", "queue:{board-batch}:job:" + j.id()));
    ASSERT_TRUE(eventually([&] { return shown("completed") == 0; }));

    // Retry all: every failed job back in line
    chrome.click("[data-state='failed']");
    ASSERT_TRUE(
        eventually([&] { return chrome.script("return !document.getElementById('retry-all').hidden;") == true; }));
    chrome.click("#retry-all");
    ASSERT_TRUE(eventually([&] { return q.counts().failed == 0; }));
    EXPECT_EQ(q.counts().waiting, 3);
    ASSERT_TRUE(eventually([&] { return shown("failed") == 0 && shown("waiting") == 3; }))
        << shown("failed") << " failed, " << shown("waiting") << " waiting shown";
}

// An active job's Cancel button asks first, then cancels it: the handler sees its token and the
// job fails with the board's reason.
TEST_F(Board, CancelsARunningJobAfterAsking) {
    redkit::queue<json> q(redis, "board-cancel");
    const std::string id = q.add("long", json{{"n", 1}}).id;
    redkit::worker_options<json> wo;
    wo.lease_duration = 600ms;  // a cancel arrives within 300 ms
    std::atomic<bool> saw{false};
    redkit::worker<json> w(
        q,
        [&](redkit::job<json>& j) {
            if (j.cancellation().wait_for(20s)) saw = true;
        },
        wo);
    ASSERT_TRUE(eventually([&] { return q.counts().active == 1; }));

    board_server server;
    browser chrome;
    chrome.go(server.url() + "#queue=board-cancel&state=active");
    const std::string button = "#jobs button[data-action='cancel'][data-job-id='" + id + "']";
    ASSERT_TRUE(eventually(
        [&] { return chrome.script("return document.querySelector(\"" + button + "\") !== null;") == true; }));
    chrome.click(button);
    EXPECT_NE(chrome.dialog_text().find(id), std::string::npos);
    chrome.answer_dialog(false);
    std::this_thread::sleep_for(800ms);
    EXPECT_FALSE(saw.load()) << "a cancel the user declined was sent";
    EXPECT_EQ(q.counts().active, 1);

    chrome.click(button);
    chrome.answer_dialog(true);
    ASSERT_TRUE(eventually([&] { return saw.load(); }));
    ASSERT_TRUE(eventually([&] { return q.get_job(id)->state() == redkit::job_state::failed; }));
    EXPECT_EQ(q.get_job(id)->failed_reason(), "cancelled: from the board");
}

// The "grouped" card counts the jobs in groups' lines and opens the groups: each with its jobs in
// line and running, whether it is paused, its limit, and a Pause or Resume button that acts. A
// group's row lists its line and a job's panel names its group. The view fits 1280 x 800, and
// the group POSTs are guarded as the others are.
TEST_F(Board, ShowsTheGroupsAndPausesAndResumesOneByItsButton) {
    redkit::queue<json> q(redis, "board-tenants");
    const std::string big = "acme-corporation-europe-west-billing-department";
    redkit::job_options in_big, in_small;
    in_big.group = big;
    in_small.group = "globex";
    for (int i = 0; i < 3; ++i) (void)q.add("bill", json{{"n", i}}, in_big);
    const std::string small_job = q.add("bill", json{{"n", 9}}, in_small).id;
    (void)q.add("plain", json{{"n", 0}});
    q.set_group_concurrency(2);
    q.set_group_concurrency("globex", 1);

    board_server server;
    {
        // the group POSTs: the same guards as the others, then they act
        httplib::Client c("127.0.0.1", server.port());
        const std::string pause = "/api/pause-group?queue=board-tenants&group=globex";
        auto r = c.Post(pause, "", "text/plain");
        ASSERT_TRUE(r);
        EXPECT_EQ(r->status, 403) << "a POST without X-Redkit-Board is refused";
        r = c.Post(pause, {{"Host", "evil.example"}, {"X-Redkit-Board", "1"}}, "", "text/plain");
        ASSERT_TRUE(r);
        EXPECT_EQ(r->status, 403) << "a foreign Host is refused";
        EXPECT_FALSE(q.group("globex")->paused);
        r = c.Post("/api/resume-group?queue=board-tenants&group=nope", {{"X-Redkit-Board", "1"}}, "", "text/plain");
        ASSERT_TRUE(r);
        EXPECT_EQ(r->status, 404) << "a group that is not listed is not resumed";
        r = c.Post("/api/pause-group?queue=board-tenants", {{"X-Redkit-Board", "1"}}, "", "text/plain");
        ASSERT_TRUE(r);
        EXPECT_EQ(r->status, 400) << "no group";
        r = c.Post("/api/pause-group?queue=nope&group=globex", {{"X-Redkit-Board", "1"}}, "", "text/plain");
        ASSERT_TRUE(r);
        EXPECT_EQ(r->status, 404) << "no queue";
        r = c.Get("/api/jobs?queue=board-tenants&state=failed&group=globex");
        ASSERT_TRUE(r);
        EXPECT_EQ(r->status, 400) << "a group's line is waiting jobs";
        r = c.Get("/api/groups?queue=board-tenants");
        ASSERT_TRUE(r);
        ASSERT_EQ(r->status, 200);
        const json page = json::parse(r->body);
        EXPECT_EQ(page["total"], 2);
        EXPECT_EQ(page["concurrency"], 2);
        EXPECT_TRUE(page["rate_limit"].is_null());
        ASSERT_EQ(page["groups"].size(), 2u);
        EXPECT_EQ(page["groups"][0]["name"], big);
        EXPECT_EQ(page["groups"][0]["waiting"], 3);
        EXPECT_TRUE(page["groups"][0]["concurrency"].is_null());
        EXPECT_EQ(page["groups"][1]["concurrency"], 1);
    }

    browser chrome;
    chrome.window(1280, 800);
    chrome.go(server.url() + "#queue=board-tenants&state=waiting");
    const auto shown = [&](const char* state) {
        return chrome.script(std::string("const e = document.querySelector(\"[data-count='") + state +
                             "']\"); return e ? Number(e.textContent) : -1;");
    };
    ASSERT_TRUE(eventually([&] { return shown("grouped") == 4 && shown("waiting") == 1; }))
        << shown("grouped") << " grouped, " << shown("waiting") << " waiting shown";
    // the list of queues counts every job in line, the groups' too
    const auto in_line = [&] {
        return chrome.script(
            "const r = document.querySelector(\"#queues tr[data-queue='board-tenants']\"); "
            "return r ? r.cells[1].textContent : '';");
    };
    ASSERT_TRUE(eventually([&] { return in_line() == "5"; })) << in_line().dump();

    chrome.click("[data-state='grouped']");
    const auto rows = [&] {
        return chrome.script(
            "return [...document.querySelectorAll('#groups tbody tr')].map(r => [...r.cells].slice(0, 5).map(c => "
            "c.textContent));");
    };
    ASSERT_TRUE(eventually([&] {
        return rows() == json{{big, "3", "0", "no", "2 (default)"}, {"globex", "1", "0", "no", "1"}};
    })) << rows().dump();
    EXPECT_TRUE(chrome.script("return document.getElementById('jobs').hidden;").get<bool>());
    EXPECT_NE(chrome.script("return document.getElementById('list-title').textContent;")
                  .get<std::string>()
                  .find("2 group(s): default limit 2"),
              std::string::npos);

    // at 1280 x 800 the groups fit: nothing wider than the window or its panel, no button cut off
    const json fit = chrome.script(R"js(
        const d = document.documentElement, list = document.getElementById('queue');
        const cut = [...document.querySelectorAll('#groups td')].filter(td =>
          td.querySelector('button') && td.scrollWidth > td.clientWidth).length;
        return { page: [d.scrollWidth, d.clientWidth], list: [list.scrollWidth, list.clientWidth], cut };
    )js");
    EXPECT_LE(fit["page"][0], fit["page"][1]) << fit.dump();
    EXPECT_LE(fit["list"][0], fit["list"][1]) << fit.dump();
    EXPECT_EQ(fit["cut"], 0) << fit.dump();

    // Pause, then Resume, by the group's button
    chrome.click("button[data-action='pause-group'][data-group='globex']");
    ASSERT_TRUE(eventually([&] { return q.group("globex")->paused; }));
    EXPECT_FALSE(q.group(big)->paused) << "only that group";
    ASSERT_TRUE(eventually([&] { return rows()[1][3] == "yes"; })) << rows().dump();
    chrome.click("button[data-action='resume-group'][data-group='globex']");
    ASSERT_TRUE(eventually([&] { return !q.group("globex")->paused; }));
    ASSERT_TRUE(eventually([&] { return rows()[1][3] == "no"; })) << rows().dump();

    // a group's row lists its line; a job's panel names its group
    chrome.click("tr[data-group='globex']");
    const auto listed = [&] {
        return chrome.script("return [...document.querySelectorAll('#jobs tbody tr')].map(r => r.dataset.jobId);");
    };
    ASSERT_TRUE(eventually([&] { return listed() == json{small_job}; })) << listed().dump();
    EXPECT_NE(chrome.script("return document.getElementById('list-title').textContent;")
                  .get<std::string>()
                  .find("1 job(s) in group globex"),
              std::string::npos);
    chrome.click("tr[data-job-id='" + small_job + "']");
    ASSERT_TRUE(eventually([&] {
        return chrome.script(
                   "const e = document.querySelector('#detail [data-field=group]'); return e ? "
                   "e.textContent : '';") == "globex";
    }));
    chrome.click("#all-groups");
    ASSERT_TRUE(eventually([&] { return rows().size() == 2; })) << rows().dump();

    // one start per group per hour: once the big group has started one, it is held for an hour
    q.set_group_rate_limit(1, 1h);
    {
        redkit::worker<json> w(q, [](redkit::job<json>&) { return json(); });
        ASSERT_TRUE(eventually([&] { return q.counts().completed == 3; })) << "the plain job and one of each group";
        EXPECT_TRUE(w.close(5s));
    }
    const auto held = [&] {
        return chrome
            .script("const e = document.querySelector(\"#groups tr[data-group='" + big +
                    "'] [data-field=held]\"); return e ? e.textContent : '';")
            .get<std::string>();
    };
    ASSERT_TRUE(eventually([&] { return held() == "in 60 min"; })) << held();
    EXPECT_NE(chrome.script("return document.getElementById('list-title').textContent;")
                  .get<std::string>()
                  .find("rate limit 1 per 3600000 ms"),
              std::string::npos);
}

// GET /metrics: every queue in the Prometheus text format, read back strictly, each number the
// queue's own (counts, pause, the jobs that finished in the last whole minute).
TEST_F(Board, MetricsInPrometheusTextMatchEachQueue) {
    redkit::queue<json> metered(redis, "metered");
    for (int i = 0; i < 3; ++i) (void)metered.add("x", i);
    redkit::job_options later;
    later.delay = std::chrono::hours(1);
    (void)metered.add("x", 9, later);
    redkit::queue<json> stopped(redis, "stopped");
    (void)stopped.add("y", 1);
    stopped.pause();
    // a job that completed in the minute before this one, as the finish time says
    const auto t = redis.command<std::vector<long long>>("TIME");
    const long long minute = (t.at(0) / 60) * 60000;
    redis.command<long long>("ZADD", "queue:{metered}:completed", minute - 30000, "done-1");
    redis.command<long long>("HSET", "queue:{metered}:job:done-1", "name", "x", "data", "1", "st", "c", "ts",
                             minute - 31750, "delay", 1000, "pt", minute - 30250, "ft", minute - 30000);

    board_server server;
    httplib::Client c("127.0.0.1", server.port());
    const auto r = c.Get("/metrics");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200);
    EXPECT_EQ(r->get_header_value("Content-Type").rfind("text/plain; version=0.0.4", 0), 0U);
    const auto samples = redkit_test::parse_prometheus(r->body);
    const auto at = [&](const std::string& key) {
        const auto found = samples.find(key);
        EXPECT_NE(found, samples.end()) << key << " missing from\n" << r->body;
        return found == samples.end() ? -1.0 : found->second;
    };
    const auto counted = metered.counts();
    EXPECT_EQ(at(R"(redkit_queue_jobs{queue="metered",state="waiting"})"), counted.waiting);
    EXPECT_EQ(at(R"(redkit_queue_jobs{queue="metered",state="waiting"})"), 3);
    EXPECT_EQ(at(R"(redkit_queue_jobs{queue="metered",state="delayed"})"), 1);
    EXPECT_EQ(at(R"(redkit_queue_jobs{queue="metered",state="completed"})"), counted.completed);
    EXPECT_EQ(at(R"(redkit_queue_jobs{queue="stopped",state="paused"})"), stopped.counts().paused);
    EXPECT_EQ(at(R"(redkit_queue_paused{queue="stopped"})"), 1);
    EXPECT_EQ(at(R"(redkit_queue_paused{queue="metered"})"), 0);
    EXPECT_EQ(at(R"(redkit_queue_finished_last_minute{queue="metered",outcome="completed"})"),
              metered.metrics(std::chrono::minutes(2)).front().completed);
    EXPECT_EQ(at(R"(redkit_queue_finished_last_minute{queue="metered",outcome="completed"})"), 1);
    EXPECT_EQ(at(R"(redkit_queue_finished_last_minute{queue="stopped",outcome="failed"})"), 0);
    // no worker; the one finished job: added at 0, delayed 1 s, started at 1.5 s, ran 0.25 s
    EXPECT_EQ(at(R"(redkit_queue_workers{queue="metered"})"), 0);
    EXPECT_EQ(at(R"(redkit_queue_wait_seconds_count{queue="metered"})"), 1);
    EXPECT_DOUBLE_EQ(at(R"(redkit_queue_wait_seconds{queue="metered",quantile="0.5"})"), 0.5);
    EXPECT_DOUBLE_EQ(at(R"(redkit_queue_processing_seconds{queue="metered",quantile="0.99"})"), 0.25);
    EXPECT_DOUBLE_EQ(at(R"(redkit_queue_processing_seconds_sum{queue="metered"})"), 0.25);
    EXPECT_EQ(at(R"(redkit_queue_processing_seconds_count{queue="stopped"})"), 0);
    EXPECT_TRUE(std::isnan(at(R"(redkit_queue_wait_seconds{queue="stopped",quantile="0.5"})")));
    {
        redkit::worker<json> staff(
            stopped, [](redkit::job<json>& j) { return j.data(); }, redkit_test::quick_worker<json>());
        ASSERT_TRUE(redkit_test::eventually([&] { return stopped.workers() == 1; }, 5s));
        const auto again = redkit_test::parse_prometheus(c.Get("/metrics")->body);
        EXPECT_EQ(again.at(R"(redkit_queue_workers{queue="stopped"})"), 1);
        EXPECT_TRUE(staff.close(5s));
    }

    // the same guards as the API: a foreign Host is refused
    const auto foreign = c.Get("/metrics", {{"Host", "evil.example:80"}});
    ASSERT_TRUE(foreign);
    EXPECT_EQ(foreign->status, 403);
}
