// SPDX-License-Identifier: MIT
// redkit-queue: looks at and manages redkit job queues from a shell (CLI11). Built from the
// repository when CLI11 is found; not part of the header-only library.
//
//   redkit-queue [--url URL] [--prefix P] queues | counts Q | jobs Q STATE [--group G] | job Q ID |
//                logs Q ID | retry Q (ID | --all) | remove Q ID | cancel Q ID [--reason R] [--retry] |
//                pause Q | resume Q | clean Q STATE [--yes] |
//                groups Q [--offset N] [--count N] | pause-group Q G | resume-group Q G |
//                events Q [--from ID] [--follow] | schedulers Q |
//                serve --port P [--bind ADDR] [--token T]   (the web board, board.hpp; with cpp-httplib)
//
// --url and --prefix may come before or after the subcommand. Output is printed only once what it
// shows was read (an error prints nothing on stdout). `clean` asks before deleting when stdin is a
// terminal (--yes does not ask; a script's clean, stdin not a terminal, does not ask either).
//
// `jobs Q delayed` and `job Q ID` show when a delayed job is due (UTC), as the queue's delayed set
// holds it (job::due_at).
//
// Grouped jobs (job_options::group) wait in their group's line, not in the queue's: `counts` shows
// them as `grouped`, apart from `waiting`, and `jobs Q waiting --group G` lists group G's line
// (the state stays required and must be waiting: a grouped job's state is waiting). `pause-group`
// also pauses a group that has no jobs yet (they wait when they come); `resume-group` refuses a
// group `groups` does not list.
//
// Exit status: 0 done, 1 Redis or server error, 2 bad usage or no such queue, job or group (nothing
// is written then), 3 a clean that was not confirmed.
#include <redkit/redkit.hpp>

#include "tool.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <unistd.h>

#include <CLI/CLI.hpp>
#ifdef REDKIT_QUEUE_BOARD
#include "board.hpp"
#endif

namespace {

using namespace redkit_queue;

void print_counts_header() {
    std::printf("%-24s %9s %9s %9s %11s %10s %9s %9s %10s %9s\n", "queue", "waiting", "active", "delayed",
                "prioritized", "completed", "failed", "paused", "w-children", "grouped");
}

void print_counts(const std::string& name, const redkit::job_counts& c) {
    std::printf("%-24s %9lld %9lld %9lld %11lld %10lld %9lld %9lld %10lld %9lld\n", name.c_str(), c.waiting, c.active,
                c.delayed, c.prioritized, c.completed, c.failed, c.paused, c.waiting_children, c.grouped);
}

void print_groups(const redkit::group_page& page, std::size_t offset) {
    std::printf("%-24s %9s %9s %-7s %9s  %s\n", "group", "waiting", "active", "paused", "own limit", "held until");
    for (const auto& g : page.groups) {
        const std::string limit = g.concurrency ? std::to_string(*g.concurrency) : "-";
        std::printf("%-24s %9lld %9lld %-7s %9s  %s\n", g.name.c_str(), g.waiting, g.active, g.paused ? "yes" : "no",
                    limit.c_str(), g.held_until ? iso_time(*g.held_until).c_str() : "-");
    }
    // the settings every group shares, only when set
    if (page.concurrency) std::printf("default per-group concurrency: %lld\n", *page.concurrency);
    if (page.rate_limit) {
        std::printf("per-group rate limit: %lld job(s) per %lld ms\n", page.rate_limit->max,
                    static_cast<long long>(page.rate_limit->per.count()));
    }
    std::printf("%lld group(s)", page.total);
    if (!page.groups.empty() && static_cast<long long>(page.groups.size()) < page.total) {
        std::printf(", %zu-%zu shown", offset + 1, offset + page.groups.size());
    }
    std::printf("\n");
}

void print_job(const redkit::job<json>& j, const redkit::job_logs& logs, const redkit::queue<json>& q) {
    std::printf("id:          %s\n", j.id().c_str());
    std::printf("name:        %s\n", j.name().c_str());
    std::printf("state:       %s\n", redkit::to_string(j.state()));
    std::printf("attempts:    %d of %d\n", j.attempts_made(), j.max_attempts());
    if (j.priority() > 0) std::printf("priority:    %d\n", j.priority());
    if (const auto group = j.group(); !group.empty()) std::printf("group:       %s\n", group.c_str());
    if (!j.scheduler_id().empty()) {
        std::printf("scheduler:   %s (tick %s)\n", j.scheduler_id().c_str(), iso_time(j.scheduled_for()).c_str());
    }
    if (!j.deduplication_id().empty()) std::printf("dedup key:   %s\n", j.deduplication_id().c_str());
    std::printf("created:     %s\n", iso_time(j.created_at()).c_str());
    std::printf("processed:   %s\n", iso_time(j.processed_at()).c_str());
    std::printf("finished:    %s\n", iso_time(j.finished_at()).c_str());
    if (j.due_at() > 0) std::printf("due:         %s\n", iso_time(j.due_at()).c_str());
    if (j.stalls() > 0) std::printf("stalls:      %d\n", j.stalls());
    if (const auto parent = j.parent()) std::printf("parent:      %s:%s\n", parent->queue.c_str(), parent->id.c_str());
    if (j.pending_children() > 0) std::printf("waiting for: %lld child job(s)\n", j.pending_children());
    const auto values = q.children_values(j.id());
    const auto ignored = q.ignored_failures(j.id());
    if (!values.empty() || !ignored.empty()) std::printf("children:\n");
    for (const auto& c : values) std::printf("  %s:%s -> %s\n", c.queue.c_str(), c.id.c_str(), c.value.dump().c_str());
    for (const auto& c : ignored)
        std::printf("  %s:%s failed, ignored: %s\n", c.queue.c_str(), c.id.c_str(), c.reason.c_str());
    const auto data = json::parse(j.raw_data(), nullptr, false);
    std::printf("data:        %s\n", data.is_discarded() ? j.raw_data().c_str() : data.dump(2).c_str());
    if (!j.progress().is_null()) std::printf("progress:    %s\n", j.progress().dump().c_str());
    if (!j.return_value().is_null()) std::printf("returned:    %s\n", j.return_value().dump().c_str());
    if (!j.failed_reason().empty()) std::printf("last error:  %s\n", j.failed_reason().c_str());
    const auto trace = j.trace();
    if (!trace.empty()) {
        std::printf("trace:\n");
        for (const auto& t : trace) std::printf("  %s\n", t.c_str());
    }
    if (logs.total > 0) {
        std::printf("logs (%lld):\n", logs.total);
        for (const auto& l : logs.lines) std::printf("  %s\n", l.c_str());
    }
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"redkit-queue: look at and manage redkit job queues"};
    const char* env_url = std::getenv("REDIS_URL");
    std::string url = env_url && *env_url ? env_url : "redis://127.0.0.1:6379";
    std::string prefix;
    app.add_option("--url", url, "Redis URL (default: $REDIS_URL, else redis://127.0.0.1:6379)");
    app.add_option("--prefix", prefix, "the key prefix the queues use (queue_options::keys), if any");
    app.require_subcommand(1);
    app.fallthrough();  // --url and --prefix after the subcommand too (the subcommands inherit it)

    std::string queue_name, id, state_name, from = "0";
    std::size_t offset = 0, count = 20;
    bool oldest = false, all = false, follow = false;
    long long grace_ms = 0;
    double seconds = 0;

    auto* queues = app.add_subcommand("queues", "list the queues and their job counts");
    // a subcommand about one queue (its first argument), or one job of a queue (queue, then id)
    const auto about_queue = [&](const char* name, const char* what) {
        auto* sub = app.add_subcommand(name, what);
        sub->add_option("queue", queue_name, "queue name")->required();
        return sub;
    };
    const auto about_job = [&](const char* name, const char* what) {
        auto* sub = about_queue(name, what);
        sub->add_option("id", id, "job id")->required();
        return sub;
    };
    auto* counts = about_queue("counts", "job counts of one queue");
    auto* jobs = about_queue("jobs", "list a queue's jobs in one state, newest first");
    jobs->add_option("state", state_name,
                     "waiting, prioritized, delayed, active, completed, failed or waiting-children")
        ->required();
    jobs->add_option("--offset", offset, "skip this many");
    jobs->add_option("--count", count, "show at most this many (up to 1000)");
    jobs->add_flag("--oldest", oldest, "oldest first (the order the queue handles them)");
    std::string group_name;
    auto* in_group = jobs->add_option("--group", group_name, "the jobs in this group's line (state waiting)");
    auto* job = about_job("job", "show a job: data, options, attempts, trace and logs");
    auto* logs = about_job("logs", "print a job's log lines");
    auto* retry = about_queue("retry", "move a failed job (or every failed job) back in line");
    retry->add_option("id", id, "job id");
    retry->add_flag("--all", all, "every failed job");
    auto* remove = about_job("remove", "remove a job that is not running");
    auto* cancel = about_job("cancel", "cancel a running job (its worker learns at its next lease renewal)");
    std::string reason = "by request";
    bool retry_it = false;
    cancel->add_option("--reason", reason, "why (the job fails with \"cancelled: <reason>\")");
    cancel->add_flag("--retry", retry_it, "run the job again while attempts remain (default: fail it for good)");
    auto* pause = about_queue("pause", "stop workers from taking jobs");
    auto* resume = about_queue("resume", "let workers take jobs again");
    auto* clean = about_queue("clean", "remove completed or failed jobs (asks first on a terminal)");
    clean->add_option("state", state_name, "completed or failed")->required();
    clean->add_option("--grace", grace_ms, "only jobs finished at least this many ms ago");
    bool yes = false;
    clean->add_flag("--yes,-y", yes, "do not ask");
    auto* events = about_queue("events", "print a queue's events (queue::set_events turns them on)");
    events->add_option("--from", from, "after this event id (0: the oldest kept, $: only new ones)");
    events->add_flag("--follow", follow, "keep printing events as they come");
    events->add_option("--seconds", seconds, "with --follow: stop after this long (default: never)");
    auto* schedulers = about_queue("schedulers", "list a queue's job schedulers");
    std::size_t group_count = 100;
    auto* groups = about_queue("groups", "list a queue's groups (job_options::group) and their limits");
    groups->add_option("--offset", offset, "skip this many");
    groups->add_option("--count", group_count, "show at most this many (up to 1000)");
    // a subcommand about one group of a queue (queue, then group)
    const auto about_group = [&](const char* name, const char* what) {
        auto* sub = about_queue(name, what);
        sub->add_option("group", group_name, "group name")->required();
        return sub;
    };
    auto* pause_group = about_group("pause-group", "stop workers from starting a group's jobs (others go on)");
    auto* resume_group = about_group("resume-group", "let workers start a paused group's jobs again");
#ifdef REDKIT_QUEUE_BOARD
    board_options board_opts;
    if (const char* t = std::getenv("REDKIT_BOARD_TOKEN")) board_opts.token = t;
    auto* serve = app.add_subcommand(
        "serve", "serve a web board: queues, counts, throughput, jobs, groups, retry/remove, retry all, clean");
    serve->add_option("--port", board_opts.port, "port to listen on (0: any free port, printed)")->required();
    serve->add_option("--bind", board_opts.bind, "address to listen on (default 127.0.0.1; others need a token)");
    serve->add_option("--token", board_opts.token, "token the board asks for (default: $REDKIT_BOARD_TOKEN)");
#endif

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? 0 : 2;  // --help: 0; a usage mistake: 2, as for a mistyped name
    }

    try {
        tool t(url, prefix);
#ifdef REDKIT_QUEUE_BOARD
        if (*serve) return board(t, board_opts).run();
#endif
        if (*queues) {
            std::vector<std::pair<std::string, redkit::job_counts>> rows;
            for (const auto& name : t.queue_names()) {
                rows.emplace_back(name, redkit::queue<json>(t.redis(), name, t.options()).counts());
            }
            print_counts_header();
            for (const auto& [name, c] : rows) print_counts(name, c);
        } else if (*counts) {
            const auto c = t.open(queue_name).counts();
            print_counts_header();
            print_counts(queue_name, c);
        } else if (*jobs) {
            const auto state = parse_state(state_name);
            const bool grouped = in_group->count() > 0;
            if (grouped && state != job_state::waiting) throw usage_error("jobs: --group lists waiting jobs only");
            if (grouped && group_name.empty()) throw usage_error("jobs: --group must not be empty");
            auto q = t.open(queue_name);
            // a typo in a group name is refused as one in a queue name is (an empty list would hide it)
            if (grouped && !q.group(group_name)) {
                throw usage_error("no group '" + group_name + "' in queue '" + queue_name + "'; redkit-queue groups " +
                                  queue_name + " lists them");
            }
            const auto page =
                grouped ? q.group_jobs(group_name, offset, count, !oldest) : q.jobs(state, offset, count, !oldest);
            // a delayed job also says when it is due (its score in the delayed set: a delay or a retry's backoff)
            const bool delayed = state == job_state::delayed;
            std::printf("%lld %s job(s)%s\n", page.total, state_name.c_str(),
                        grouped ? (" in group " + group_name).c_str() : "");
            std::printf("%-24s %-20s %-9s %-24s ", "id", "name", "attempts", "when");
            if (delayed) std::printf("%-24s ", "due");
            std::printf("data / reason\n");
            for (const auto& j : page.jobs) {
                const long long when = j.finished_at()    ? j.finished_at()
                                       : j.processed_at() ? j.processed_at()
                                                          : j.created_at();
                const std::string attempts = std::to_string(j.attempts_made()) + "/" + std::to_string(j.max_attempts());
                const std::string what = j.state() == job_state::failed ? j.failed_reason() : one_line(j.raw_data());
                std::printf("%-24s %-20s %-9s %-24s ", j.id().c_str(), j.name().c_str(), attempts.c_str(),
                            iso_time(when).c_str());
                if (delayed) std::printf("%-24s ", iso_time(j.due_at()).c_str());
                std::printf("%s\n", what.c_str());
            }
        } else if (*job) {
            auto q = t.open(queue_name);
            const auto j = q.get_job(id);
            if (!j) throw usage_error("no job '" + id + "' in queue '" + queue_name + "'");
            print_job(*j, q.logs(id, 0, 1000), q);
        } else if (*logs) {
            auto q = t.open(queue_name);
            if (!q.get_job(id)) throw usage_error("no job '" + id + "' in queue '" + queue_name + "'");
            for (const auto& l : q.logs(id, 0, 100000).lines) std::printf("%s\n", l.c_str());
        } else if (*retry) {
            if (all == !id.empty()) throw usage_error("retry: give a job id or --all");
            auto q = t.open(queue_name);
            if (all) {
                std::printf("%zu job(s) moved back in line\n", q.retry_failed());
            } else if (q.retry(id)) {
                std::printf("job %s moved back in line\n", id.c_str());
            } else {
                throw usage_error("no failed job '" + id + "' in queue '" + queue_name + "'");
            }
        } else if (*remove) {
            const auto r = t.open(queue_name).remove(id);
            if (r == redkit::remove_result::not_found) throw usage_error("no job '" + id + "' in '" + queue_name + "'");
            if (r == redkit::remove_result::active) throw usage_error("job " + id + " is running; not removed");
            std::printf("job %s removed\n", id.c_str());
        } else if (*cancel) {
            const auto r = t.open(queue_name)
                               .cancel(id, reason, retry_it ? redkit::after_cancel::retry : redkit::after_cancel::fail);
            if (r == redkit::cancel_result::not_found) throw usage_error("no job '" + id + "' in '" + queue_name + "'");
            if (r == redkit::cancel_result::not_running)
                throw usage_error("job " + id + " is not running; not cancelled");
            std::printf("job %s: cancel requested\n", id.c_str());
        } else if (*pause) {
            t.open(queue_name).pause();
            std::printf("queue %s paused\n", queue_name.c_str());
        } else if (*resume) {
            t.open(queue_name).resume();
            std::printf("queue %s resumed\n", queue_name.c_str());
        } else if (*clean) {
            const auto state = parse_state(state_name);
            if (state != job_state::completed && state != job_state::failed)
                throw usage_error("clean: state must be completed or failed");
            if (grace_ms < 0) throw usage_error("clean: --grace must not be negative");
            auto q = t.open(queue_name);
            if (!yes && ::isatty(STDIN_FILENO) == 1) {
                const auto c = q.counts();
                const long long held = state == job_state::completed ? c.completed : c.failed;
                const std::string which =
                    grace_ms > 0 ? " finished at least " + std::to_string(grace_ms) + " ms ago" : std::string();
                std::printf("remove the %s jobs of queue '%s'%s (%lld %s now)? [y/N] ", state_name.c_str(),
                            queue_name.c_str(), which.c_str(), held, state_name.c_str());
                std::fflush(stdout);
                std::string answer;
                if (!std::getline(std::cin, answer) || (answer != "y" && answer != "Y" && answer != "yes")) {
                    std::printf("nothing removed\n");
                    return 3;
                }
            }
            const auto n = q.clean(state, std::chrono::milliseconds(grace_ms));
            std::printf("%zu %s job(s) removed\n", n, state_name.c_str());
        } else if (*events) {
            auto q = t.open(queue_name);
            if (!q.events_enabled()) {
                std::fprintf(stderr, "redkit-queue: events are off for queue '%s' (queue::set_events turns them on)\n",
                             queue_name.c_str());
            }
            redkit::queue_events reader(t.redis(), queue_name, t.options());
            if (!(seconds >= 0 && seconds <= 1e7)) throw usage_error("events: --seconds must be in [0, 10^7]");
            const bool forever = seconds == 0;  // (a steady_clock time 10^15 ms ahead would overflow)
            const auto until =
                std::chrono::steady_clock::now() + std::chrono::milliseconds(static_cast<long long>(seconds * 1000));
            std::string after = from;
            do {
                const auto left = forever ? std::chrono::milliseconds(1000)
                                          : std::chrono::duration_cast<std::chrono::milliseconds>(
                                                until - std::chrono::steady_clock::now());
                const auto block =
                    follow ? std::max(std::chrono::milliseconds(1), std::min(left, std::chrono::milliseconds(1000)))
                           : std::chrono::milliseconds(0);
                const auto batch = reader.read(after, 100, block);
                for (const auto& e : batch) {
                    std::printf("%s  %-18s %-10s %-20s %s\n", iso_time(e.time()).c_str(), e.id.c_str(), e.type.c_str(),
                                e.job_id.c_str(), one_line(e.detail).c_str());
                    after = e.id;
                }
                std::fflush(stdout);
                if (!follow && batch.size() < 100) break;
            } while (forever || std::chrono::steady_clock::now() < until);
        } else if (*groups) {
            const auto page = t.open(queue_name).groups(offset, group_count);
            print_groups(page, offset);
        } else if (*pause_group) {
            auto q = t.open(queue_name);
            const bool listed = q.group(group_name).has_value();
            q.pause_group(group_name);
            std::printf("group %s paused%s\n", group_name.c_str(),
                        listed ? "" : " ahead of its jobs (none in line or running yet)");
        } else if (*resume_group) {
            auto q = t.open(queue_name);
            const auto g = q.group(group_name);
            if (!g) {
                throw usage_error("no group '" + group_name + "' in queue '" + queue_name + "'; redkit-queue groups " +
                                  queue_name + " lists them");
            }
            q.resume_group(group_name);
            std::printf("group %s resumed%s\n", group_name.c_str(), g->paused ? "" : " (it was not paused)");
        } else if (*schedulers) {
            auto q = t.open(queue_name);
            const auto all_schedulers = q.schedulers(0, 1000);
            std::printf("%-24s %-28s %-20s %-26s %s\n", "id", "schedule", "job name", "next run", "jobs made");
            for (const auto& s : all_schedulers) {
                const std::string when =
                    s.options.cron.empty()
                        ? "every " + std::to_string(s.options.every.count()) + " ms"
                        : s.options.cron +
                              (s.options.time_zone.empty() ? std::string() : " (" + s.options.time_zone + ")");
                std::printf("%-24s %-28s %-20s %-26s %lld\n", s.id.c_str(), when.c_str(), s.job_name.c_str(),
                            iso_time(s.next_run).c_str(), s.jobs_made);
            }
        }
    } catch (const usage_error& e) {
        std::fprintf(stderr, "redkit-queue: %s\n", e.what());
        return 2;
    } catch (const std::invalid_argument& e) {
        std::fprintf(stderr, "redkit-queue: %s\n", e.what());
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "redkit-queue: %s\n", e.what());
        return 1;
    }
    return 0;
}
