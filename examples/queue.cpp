// SPDX-License-Identifier: MIT
// Job queue: the welcome e-mail. A sign-up adds a job; a worker sends the mail. The first attempt
// fails (the SMTP server says "try again later"), the job comes back after an exponential
// backoff, the second attempt succeeds. A failed-event handler logs the failure; adding the same
// job id twice sends one mail. Then a scheduler sends three reminders 100 ms apart. Events are on
// and the queue is left in Redis, so `redkit-queue` can show it afterwards (scripts/demo does).
#include <redkit/queue.hpp>

#include <chrono>
#include <future>
#include <iostream>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

using namespace std::chrono_literals;

struct welcome_mail {
    std::string to;
    std::string name;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(welcome_mail, to, name)

int main() try {
    redkit::client redis = redkit::default_client();
    redkit::queue<welcome_mail> mails(redis, "welcome-mail");
    mails.obliterate(true);  // start from a clean queue
    mails.set_events(1000);  // a capped stream of every change, for redkit-queue events / queue_events

    // the sign-up: add the job (twice, as a retried HTTP request would)
    redkit::job_options once;
    once.attempts = 3;
    once.backoff = redkit::backoff_policy::exponential(20ms);  // 20 ms, then 40 ms
    once.job_id = "welcome:ada@example.com";                   // one welcome mail per address
    const auto first = mails.add("welcome", {"ada@example.com", "Ada"}, once);
    const auto again = mails.add("welcome", {"ada@example.com", "Ada"}, once);
    std::cout << "added job " << first.id << (first.created ? "" : " (duplicate)") << '\n';
    std::cout << "added job " << again.id << (again.created ? "" : " (duplicate: not added again)") << '\n';

    std::mutex out;  // the worker's threads print too
    std::promise<void> sent;
    redkit::worker_options<welcome_mail> options;
    options.concurrency = 2;
    options.on_failed = [&](const redkit::job<welcome_mail>& job, const redkit::job_failure& failure) {
        std::lock_guard<std::mutex> lock(out);
        std::cout << "failed: job " << job.id() << " attempt " << job.attempts_made() << " of " << job.max_attempts()
                  << ": " << failure.reason;
        if (failure.will_retry) std::cout << " (retrying in " << failure.retry_in.count() << " ms)";
        std::cout << '\n';
    };
    options.on_completed = [&](const redkit::job<welcome_mail>& job) {
        {
            std::lock_guard<std::mutex> lock(out);
            std::cout << "completed: job " << job.id() << " -> " << job.return_value().dump() << '\n';
        }
        if (job.name() == "welcome") sent.set_value();  // once: the other jobs complete too
    };

    redkit::worker<welcome_mail> worker(
        mails,
        [&](redkit::job<welcome_mail>& job) {
            job.log("rendering '" + job.name() + "' for " + job.data().to);  // kept with the job
            if (job.name() == "reminder") return nlohmann::json{{"reminded", job.data().to}};
            if (job.name() == "count") return nlohmann::json(job.data().to == "eu" ? 12 : 30);  // a flow's child
            if (job.name() == "digest") {  // the flow's parent: runs after its children, reads their values
                long long signups = 0;
                for (const auto& child : job.children_values()) signups += child.value.get<long long>();
                return nlohmann::json{{"signups", signups}, {"from", job.children_values().size()}};
            }
            if (job.attempts_made() == 0) throw std::runtime_error("smtp: 421 try again later");
            {
                std::lock_guard<std::mutex> lock(out);
                std::cout << "sent welcome mail to " << job.data().to << " on attempt " << job.attempts_made() + 1
                          << '\n';
            }
            return nlohmann::json{{"accepted", job.data().to}};  // stored as the job's return value
        },
        options);

    if (sent.get_future().wait_for(10s) != std::future_status::ready) throw std::runtime_error("the mail was not sent");

    // a job scheduler: one job per tick, however many workers run; removed after its limit
    redkit::scheduler_options reminders = redkit::scheduler_options::every_interval(100ms);
    reminders.limit = 3;
    mails.upsert_scheduler("reminder", reminders, "reminder", {"ada@example.com", "Ada"});
    for (int i = 0; i < 200 && mails.get_scheduler("reminder"); ++i) std::this_thread::sleep_for(10ms);
    for (int i = 0; i < 200 && mails.counts().completed < 4; ++i) std::this_thread::sleep_for(10ms);

    // a flow: the digest waits for its two counts, then reads what they returned
    redkit::flow_job digest{"digest", {{"to", "team@example.com"}, {"name", "Team"}}};
    digest.children.push_back({"count", {{"to", "eu"}, {"name", "EU sign-ups"}}});
    digest.children.push_back({"count", {{"to", "us"}, {"name", "US sign-ups"}}});
    const auto flow = mails.add_flow(digest);
    for (int i = 0; i < 200 && mails.get_job(flow.id)->state() != redkit::job_state::completed; ++i) {
        std::this_thread::sleep_for(10ms);
    }
    std::cout << "flow: digest " << flow.id << " ran after counts " << flow.children[0].id << " and "
              << flow.children[1].id << " -> " << mails.get_job(flow.id)->return_value().dump() << '\n';
    worker.close(5s);

    const auto counts = mails.counts();
    std::cout << "counts: completed " << counts.completed << ", failed " << counts.failed << ", waiting "
              << counts.waiting << '\n';
    const auto reminded = mails.jobs(redkit::job_state::completed, 0, 10, false);
    for (const auto& job : reminded.jobs) {
        if (job.name() == "reminder") {
            std::cout << "reminder " << job.id() << " ran " << (job.processed_at() - job.created_at())
                      << " ms after it was made\n";
        }
    }
    std::cout << "log of " << first.id << ": " << mails.logs(first.id).lines.front() << " ("
              << mails.logs(first.id).total << " lines)\n";
    std::cout << "left in Redis for redkit-queue: queue welcome-mail, events on\n";
    return 0;
} catch (const std::exception& e) {
    std::cerr << "queue example failed: " << e.what() << '\n';
    return 1;
}
