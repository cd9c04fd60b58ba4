// SPDX-License-Identifier: MIT
// The code of the docs' "Job queues" page: each `//! [name]` pair marks a snippet the page shows.
// Run as a test against REDIS_URL.
#include <redkit/redkit.hpp>

#include <atomic>
#include <chrono>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

struct welcome_mail {
    std::string to, name;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(welcome_mail, to, name)

struct smtp_reply {
    int status = 250;
    std::chrono::milliseconds retry_after{0};
};

struct smtp_client {  // stands in for the mail server
    std::atomic<int> sent{0};
    nlohmann::json send(const welcome_mail& m) { return ++sent, nlohmann::json{{"accepted", m.to}}; }
    smtp_reply deliver(const welcome_mail&) { return ++sent, smtp_reply{}; }
} smtp;

template <typename T>
void wait_until_done(redkit::queue<T>& q, long long completed) {
    for (int i = 0; i < 500 && q.counts().completed < completed; ++i) std::this_thread::sleep_for(10ms);
}

void jobs(redkit::client redis) {
    const std::string email = "ada@example.com", name = "Ada";
    //! [queue]
    redkit::queue<welcome_mail> mails(redis, "docs-mail");
    redkit::job_options o;
    o.attempts = 3;                                                    // 1 = no retry
    o.backoff = redkit::backoff_policy::exponential(2s, 0.2);          // 2 s, 4 s; jitter: up to 20% less
    o.job_id = "welcome:" + email;                                     // same id again: a no-op (dedupe)
    o.remove_on_complete = redkit::retention::keep_last(1000);         // or keep_all/keep_none/keep_for(24h)
    redkit::added_job added = mails.add("welcome", {email, name}, o);  // also: delay, priority, add_bulk
    // added.id, and added.created (false: a job with that id existed, nothing was added)

    redkit::worker_options<welcome_mail> wo;
    wo.concurrency = 8;
    wo.on_failed = [](const auto& job, const redkit::job_failure& f) {
        std::cerr << job.id() << ": " << f.reason << (f.will_retry ? " (will retry)" : "") << '\n';
    };
    redkit::worker<welcome_mail> worker(
        mails,
        [](redkit::job<welcome_mail>& job) {
            job.update_progress({{"step", "render"}});
            // job.attempts_made(): attempts finished before this one (0 on the first), of max_attempts()
            return smtp.send(job.data());  // a result is stored as JSON; throwing fails the attempt
        },
        wo);
    //! [queue]
    wait_until_done(mails, 1);
    //! [close]
    worker.close(10s);  // stop taking jobs, wait for the running ones
    //! [close]
    std::cout << "queue: job " << added.id << " " << redkit::to_string(mails.get_job(added.id)->state()) << '\n';
    mails.obliterate(true);
}

void deduplication(redkit::client redis) {
    redkit::queue<nlohmann::json> jobs(redis, "docs-dedup");
    //! [dedup]
    // simple: while the job added with this key is unfinished, adds with the key add nothing
    redkit::job_options once;
    once.deduplication.id = "import:file-17";  // a key of your own, apart from the job id
    const redkit::added_job first = jobs.add("import", {{"file", 17}}, once);
    const redkit::added_job again = jobs.add("import", {{"file", 17}}, once);
    std::cout << "import: " << redkit::to_string(first.outcome) << ", then " << redkit::to_string(again.outcome)
              << " -> job " << again.id << " (the same)\n";

    // throttle: at most one job per key per minute, even when it finished meanwhile
    redkit::job_options per_minute;
    per_minute.deduplication.id = "digest:team";
    per_minute.deduplication.ttl = 60s;
    (void)jobs.add("digest", {{"team", "core"}}, per_minute);

    // debounce: one job, 2 s after the last add of a burst, with that add's data
    redkit::job_options debounce;
    debounce.delay = 2s;
    debounce.deduplication = {"reindex:product-42", 2s, true, true};  // id, ttl, extend, replace
    for (int edit = 1; edit <= 3; ++edit) {
        const redkit::added_job a = jobs.add("reindex", {{"edit", edit}}, debounce);
        std::cout << "reindex edit " << edit << ": " << redkit::to_string(a.outcome) << " (job " << a.id << ")\n";
    }
    //! [dedup]
    const auto reindex = jobs.jobs(redkit::job_state::delayed).jobs.at(0);
    std::cout << "reindex job " << reindex.id() << " holds edit " << reindex.data()["edit"] << '\n';
    jobs.obliterate(true);
    // keys with a TTL outlive obliterate until they expire: deleted here so the program can run again
    (void)redis.command<long long>("DEL", "queue:{docs-dedup}:dedup:digest%3Ateam",
                                   "queue:{docs-dedup}:dedup:reindex%3Aproduct-42");
}

void events() {
    redkit::client redis = redkit::default_client();
    redkit::queue<welcome_mail> mails(redis, "docs-events");
    std::atomic<bool> running{true};
    //! [events]
    mails.set_events(10000);  // off by default; the stream keeps ~10 000 events

    redkit::queue_events events(redis, "docs-events");  // in any process
    std::string after = "$";                            // "0": from the oldest kept; or an event id
    //! [events]
    (void)mails.add("welcome", {"ada@example.com", "Ada"});
    after = "0";
    int seen = 0;
    //! [events-loop]
    while (running) {
        for (const auto& e : events.read(after, 100, 5s)) {  // blocks up to 5 s for the next ones
            std::cout << e.type << " " << e.job_id << " " << e.detail << "\n";
            after = e.id;  // resume from here, after a restart too
            running = ++seen < 1;
        }
    }
    //! [events-loop]
    mails.obliterate(true);
}

void schedulers(redkit::client redis) {
    redkit::queue<welcome_mail> mails(redis, "docs-schedules");
    //! [schedulers]
    // every weekday at 09:00 in Berlin, summer time or not; every process may call this at start-up
    mails.upsert_scheduler("digest", redkit::scheduler_options::cron_pattern("0 9 * * MON-FRI", "Europe/Berlin"),
                           "digest", welcome_mail{"team@example.com", "Team"});

    redkit::scheduler_options ping = redkit::scheduler_options::every_interval(30s);
    ping.limit = 100;          // also: start, end
    redkit::job_options each;  // each tick's job: attempts, backoff,
    each.attempts = 3;         // priority, retention (not delay, job_id)
    mails.upsert_scheduler("ping", ping, "ping", welcome_mail{}, each);

    for (const auto& s : mails.schedulers()) std::cout << s.id << ": " << s.jobs_made << " jobs made\n";
    mails.remove_scheduler("ping");
    //! [schedulers]
    mails.obliterate(true);
}

void render(int /*page*/) { std::this_thread::sleep_for(10ms); }  // stands in for real work

void cancelling(redkit::client redis) {
    redkit::queue<nlohmann::json> reports(redis, "docs-reports");
    redkit::worker_options<nlohmann::json> wo;
    wo.lease_duration = 2s;  // renewed every second: a cancel reaches the handler within about 1 s
    //! [cancel]
    redkit::job_options o;
    o.timeout = 30s;  // an attempt still running then is cancelled too ("timed out after 30000 ms")
    const std::string id = reports.add("render", {{"pages", 500}}, o).id;

    redkit::worker<nlohmann::json> w(
        reports,
        [](redkit::job<nlohmann::json>& job) {
            const redkit::cancel_token stop = job.cancellation();
            for (int page = 0; page < job.data().at("pages").get<int>(); ++page) {
                if (stop.stop_requested()) return;  // the attempt fails with stop.reason()
                render(page);
            }
        },
        wo);
    //! [cancel]
    while (reports.get_job(id)->state() != redkit::job_state::active) std::this_thread::sleep_for(5ms);
    //! [cancel-call]
    // from any process (or: redkit-queue cancel docs-reports <id> --reason "customer asked")
    const redkit::cancel_result r = reports.cancel(id, "customer asked");  // requested, not_running, not_found
    //! [cancel-call]
    for (int i = 0; i < 500 && reports.get_job(id)->state() != redkit::job_state::failed; ++i)
        std::this_thread::sleep_for(10ms);
    std::cout << "cancel: " << (r == redkit::cancel_result::requested ? "requested" : "refused") << ", job "
              << redkit::to_string(reports.get_job(id)->state()) << " (" << reports.get_job(id)->failed_reason()
              << ")\n";
    w.close(5s);
    reports.obliterate(true);
}

void rate_limited(redkit::client redis) {
    redkit::queue<welcome_mail> mails(redis, "docs-limited");
    (void)mails.add("welcome", {"ada@example.com", "Ada"});
    //! [rate_limited]
    mails.set_rate_limit(50, 1s);  // at most 50 jobs of this queue start in any 1 s, all workers, all processes

    redkit::worker<welcome_mail> w(mails, [](redkit::job<welcome_mail>& job) {
        const smtp_reply r = smtp.deliver(job.data());
        if (r.status == 429) throw redkit::rate_limited_error(r.retry_after);  // back in line, no attempt used
        return nlohmann::json{{"status", r.status}};
    });
    //! [rate_limited]
    wait_until_done(mails, 1);
    w.close(5s);
    std::cout << "rate-limited queue: " << mails.counts().completed << " completed\n";
    mails.obliterate(true);
}

void flows(redkit::client redis) {
    redkit::queue<nlohmann::json> shipping(redis, "docs-shipping");
    const std::vector<std::string> skus = {"chair", "desk"};
    //! [flow]
    redkit::flow_job order{"ship-order", {{"order", 1042}}};  // name, data (JSON): to `shipping`
    for (const auto& sku : skus) {
        order.children.push_back({"pick", {{"sku", sku}}});  // children may live in other queues too
    }
    redkit::flow_job invoice{"invoice", {{"order", 1042}}};
    invoice.on_failure = redkit::on_child_failure::ignore;  // default: fail_parent
    order.children.push_back(invoice);
    const redkit::added_flow ids = shipping.add_flow(order);  // one script: all jobs or none

    redkit::worker<nlohmann::json> w(shipping, [](redkit::job<nlohmann::json>& job) {
        for (const auto& c : job.children_values()) std::cout << c.queue << ":" << c.id << " -> " << c.value << '\n';
        for (const auto& c : job.ignored_failures()) std::cerr << c.id << " failed: " << c.reason << '\n';
        return job.name() == "pick" ? job.data()["sku"] : nlohmann::json(nullptr);
    });
    //! [flow]
    for (int i = 0; i < 500 && shipping.get_job(ids.id)->state() != redkit::job_state::completed; ++i) {
        std::this_thread::sleep_for(10ms);
    }
    w.close(5s);
    std::cout << "flow: parent " << redkit::to_string(shipping.get_job(ids.id)->state()) << '\n';
    shipping.obliterate(true);
}

void groups(redkit::client redis) {
    redkit::queue<nlohmann::json> exports(redis, "docs-exports");
    //! [groups]
    // one group per tenant: workers take the groups' jobs in turn, one job per group per turn
    redkit::job_options o;
    o.group = "tenant-42";
    (void)exports.add("export", {{"report", "sales"}}, o);

    exports.set_group_concurrency(2);              // at most 2 jobs of any one tenant at once
    exports.set_group_concurrency("tenant-7", 5);  // a tenant of its own size
    exports.set_group_rate_limit(100, 1min);       // at most 100 starts per tenant per minute
    exports.pause_group("tenant-13");              // its jobs wait; the others go on

    for (const redkit::group_info& g : exports.groups().groups) {
        std::cout << g.name << ": " << g.waiting << " waiting, " << g.active << " active"
                  << (g.paused ? ", paused" : "") << '\n';
    }
    //! [groups]
    exports.obliterate(true);
}

void readme_features(redkit::client redis) {
    redkit::queue<nlohmann::json> reports(redis, "docs-readme");
    //! [readme-queue]
    redkit::job_options o;
    o.timeout = 30s;                                           // an attempt still running then is cancelled
    o.group = "tenant-42";                                     // fair turns per tenant
    o.deduplication = {"reindex:product-42", 2s, true, true};  // debounce: id, ttl, extend, replace
    o.delay = 2s;
    const redkit::added_job a = reports.add("render", {{"pages", 500}}, o);  // a.outcome: created, debounced...

    reports.set_group_concurrency(2);        // at most 2 jobs of any tenant at once, all processes
    reports.pause_group("tenant-13");        // its jobs wait, the others go on
    reports.cancel(a.id, "customer asked");  // from any process; the handler's job.cancellation() fires
    //! [readme-queue]
    const auto j = reports.get_job(a.id);
    std::cout << "readme: job " << a.id << " " << redkit::to_string(a.outcome) << ", " << redkit::to_string(j->state())
              << " in group " << j->group() << ", tenant-13 paused: " << reports.group("tenant-13")->paused << '\n';
    reports.obliterate(true);
    (void)redis.command<long long>("DEL", "queue:{docs-readme}:dedup:reindex%3Aproduct-42");
}

int main() try {
    redkit::client redis = redkit::default_client();
    jobs(redis);
    deduplication(redis);
    events();
    schedulers(redis);
    rate_limited(redis);
    flows(redis);
    cancelling(redis);
    groups(redis);
    readme_features(redis);
    return 0;
} catch (const std::exception& e) {
    std::cerr << "queue snippets failed: " << e.what() << '\n';
    return 1;
}
