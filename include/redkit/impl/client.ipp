// SPDX-License-Identifier: MIT
// redkit::client's out-of-line definitions (client.hpp): the facade over the core's executor
// (core/dispatch) and, on a cluster, its router (core/topology).
#pragma once

#include <redkit/client.hpp>
#include <redkit/core/commands.hpp>
#include <redkit/core/dispatch/executor.hpp>
#include <redkit/core/dispatch/multiplexer.hpp>
#include <redkit/core/io/connection_access.hpp>
#include <redkit/core/io/observe.hpp>
#include <redkit/core/topology/cluster.hpp>
#include <redkit/core/topology/slots.hpp>

#include <cstdlib>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <utility>

namespace redkit {
inline namespace v0 {

REDKIT_DECL bool is_read_only(std::string_view name) noexcept { return detail::traits_of(name).read_only; }

REDKIT_DECL bool is_multiplexable(std::string_view name) noexcept { return detail::traits_of(name).shareable; }

REDKIT_DECL client::client(client_options options)
    : pool_(std::make_shared<pool>(std::move(options))), shared_(std::make_shared<detail::shared_dispatch>()) {
    if (pool_->options().cluster.enabled()) {
        cluster_ = std::make_shared<detail::cluster_router>(pool_->shared_options());
        if (!pool_->options().lazy_connect) (void)cluster_->map();
        return;
    }
    if (pool_->options().multiplex) (void)shared_->get(*pool_);
    if (!pool_->options().lazy_connect) pool_->warm_up();
}

namespace detail {

// The command's text for the observer (client_options::observe_query_text): every argument "?",
// but keys with observe_keys.
inline std::string query_text_of(const client_options& o, const argv& a, const command_traits& t) {
    if (!o.observe_query_text) return {};
    std::vector<bool> shown(a.size(), false);
    if (o.observe_keys) {
        const key_positions keys(a, t);
        for (const std::size_t i : keys.keys()) shown[i] = true;
    }
    std::string out(a.command_name());
    for (std::size_t i = 1; i < a.size(); ++i) {
        out += ' ';
        if (shown[i]) {
            out += a.at(i);
        } else {
            out += '?';
        }
    }
    return out;
}

// A watch for a command `a` of a client with options `o` (null when nothing observes).
inline std::unique_ptr<command_watch> watch_argv(const client_options& o, const argv& a, const command_traits& t) {
    if (!o.observer) return nullptr;
    return watch_command(o, a.command_name(), a.first_key(), query_text_of(o, a, t), 1, command_path::shared);
}

}  // namespace detail

REDKIT_DECL detail::reply_ptr client::execute(const detail::argv& a, bool idempotent_request) const {
    // a callback redkit runs (then(), a resumed coroutine) holds up the replies behind it: it may
    // be the very thread that would read this one
    detail::refuse_wait_in_completion();
    // the command's traits, found once for the whole request
    const detail::command_traits t = detail::traits_of(a.command_name(), a.size() > 1 ? a.at(1) : "");
    if (pool_->options().observer) return execute_observed(a, t, idempotent_request);
    if (cluster_) return detail::execute_on_cluster(*cluster_, a, t, idempotent_request);
    return detail::execute(*pool_, *shared_, a, t, idempotent_request);
}

REDKIT_DECL detail::reply_ptr client::execute_observed(const detail::argv& a, const detail::command_traits& t,
                                                       bool idempotent_request) const {
    detail::require_arguments(a);
    const std::unique_ptr<detail::command_watch> w = detail::watch_argv(pool_->options(), a, t);
    detail::reply_ptr r;
    try {
        r = cluster_ ? detail::execute_on_cluster(*cluster_, a, t, idempotent_request, w.get())
                     : detail::execute(*pool_, *shared_, a, t, idempotent_request, w.get());
    } catch (...) {
        w->end_failed(detail::errc_of(std::current_exception(), errc::io_error));
        throw;
    }
    w->end_with(r.get());
    return r;
}

REDKIT_DECL std::shared_ptr<detail::mux_request> client::submit_argv(const detail::argv& a,
                                                                     std::shared_ptr<detail::multiplexer>& mux,
                                                                     bool watched) const {
    detail::require_arguments(a);
    const detail::command_traits t = detail::traits_of(a.command_name(), a.size() > 1 ? a.at(1) : "");
    if (!t.shareable) {
        throw std::invalid_argument("redkit: submit: " + std::string(a.command_name()) +
                                    " blocks or holds connection state; send it with command()");
    }
    auto r = std::make_shared<detail::mux_request>();
    detail::append_resp(r->wire, a);
    r->command.assign(a.command_name());
    r->key.assign(a.first_key().substr(0, 200));
    if (cluster_) {
        // the node of the command's slot; a MOVED or ASK reply sends it again where it says
        // (detail::cluster_hop), a MOVED moving the slot in the map for the next command too
        const detail::key_positions keys(a, t);
        if (keys.kind() == detail::route_kind::broadcast) {
            throw std::invalid_argument("redkit: submit: " + std::string(a.command_name()) +
                                        " runs on every primary of a cluster; send it with command()");
        }
        r->slot = keys.kind() == detail::route_kind::keyed ? keys.single_slot() : -1;
        const auto node = r->slot >= 0 ? cluster_->owner(r->slot) : cluster_->any_primary();
        if (watched) r->watch = detail::watch_argv(pool_->options(), a, t);
        // r itself is queued nowhere: its hops go to the nodes, following MOVED and ASK
        detail::cluster_hop::send(cluster_, *node, r, false, 0);
        mux.reset();
        return r;
    }
    detail::multiplexer& m = shared_->get(*pool_);
    if (watched) r->watch = detail::watch_argv(pool_->options(), a, t);
    m.submit(r);
    mux = std::shared_ptr<detail::multiplexer>(shared_, &m);
    return r;
}

namespace detail {

// EVAL of the script `source` with the arguments of an EVALSHA request's wire (the same count,
// keys and arguments: only the first two change).
inline std::string eval_wire(const std::string& evalsha, const std::string& source) {
    std::size_t at = evalsha.find("\r\n");  // past "*<argc>"
    const std::string head = evalsha.substr(0, at + 2);
    for (int skip = 0; skip < 4 && at != std::string::npos; ++skip) at = evalsha.find("\r\n", at + 2);
    if (at == std::string::npos) throw std::logic_error("redkit: submit_eval: malformed EVALSHA");
    std::string out = head;
    out += "$4\r\nEVAL\r\n$";
    out += std::to_string(source.size());
    out += "\r\n";
    out += source;
    out.append(evalsha, at);  // "\r\n" and the rest
    return out;
}

// The EVALSHA of client::submit_eval, finished: on NOSCRIPT it sends EVAL once; else it hands
// its outcome to the caller's request.
class evalsha_completion final : public mux_completion {
public:
    evalsha_completion(client c, std::shared_ptr<mux_request> caller, std::shared_ptr<const std::string> source,
                       int slot)
        : client_(std::move(c)), caller_(std::move(caller)), source_(std::move(source)), slot_(slot) {}

    void complete(std::shared_ptr<mux_request> r) override {
        if (source_ && r->status.ok() && !r->refused && raw_is_error(r->reply.get()) &&
            is_noscript(raw_str(r->reply.get()))) {
            std::exception_ptr failed;
            try {
                client_.submit_wire(eval_wire(r->wire, *source_), "EVAL", r->key, slot_, caller_);
                return;
            } catch (...) {
                failed = std::current_exception();
            }
            caller_->refused = failed;
        } else {
            caller_->reply = std::move(r->reply);
            caller_->status = std::move(r->status);
            caller_->refused = std::move(r->refused);
            caller_->command = std::move(r->command);
            caller_->key = std::move(r->key);
        }
        finish_detached(caller_, client_.options().on_error);
    }

private:
    client client_;
    std::shared_ptr<mux_request> caller_;
    std::shared_ptr<const std::string> source_;  // null: this is the EVAL, hand over whatever came
    int slot_;                                   // on a cluster: the script's keys' (-1: none)
};

}  // namespace detail

REDKIT_DECL std::shared_ptr<detail::mux_request> client::submit_evalsha(
    const detail::argv& a, std::shared_ptr<const std::string> source) const {
    auto caller = std::make_shared<detail::mux_request>();
    caller->command = "EVALSHA";
    caller->key.assign(a.first_key().substr(0, 200));
    // on a cluster, where EVAL goes after NOSCRIPT: the node of the first key (submit_argv checks
    // that every key shares its slot)
    const int slot = cluster_ && a.size() > 3 && a.at(2) != "0" ? detail::slot_of(a.at(3)) : -1;
    std::shared_ptr<detail::multiplexer> mux;
    std::shared_ptr<detail::mux_request> first = submit_argv(a, mux, false);
    if (pool_->options().observer) {
        caller->watch = detail::watch_argv(pool_->options(), a, detail::traits_of("EVALSHA"));
    }
    std::unique_ptr<detail::mux_completion> c =
        std::make_unique<detail::evalsha_completion>(*this, caller, std::move(source), slot);
    if (!detail::attach_completion(mux.get(), first, c)) c->complete(std::move(first));
    return caller;
}

REDKIT_DECL void client::submit_wire(std::string wire, std::string_view command, std::string_view key, int slot,
                                     std::shared_ptr<detail::mux_request> caller) const {
    auto r = std::make_shared<detail::mux_request>();
    r->wire = std::move(wire);
    r->command.assign(command);
    r->key.assign(key);
    std::unique_ptr<detail::mux_completion> c =
        std::make_unique<detail::evalsha_completion>(*this, std::move(caller), nullptr, -1);
    if (cluster_) {
        // r is queued nowhere; its hops follow MOVED and ASK, and finish it
        r->slot = slot;
        const auto node = slot >= 0 ? cluster_->owner(slot) : cluster_->any_primary();
        (void)detail::attach_detached(r, c);  // r is new: it cannot have finished
        detail::cluster_hop::send(cluster_, *node, r, false, 0);
        return;
    }
    detail::multiplexer& m = shared_->get(*pool_);
    m.submit(r);
    if (!m.attach(r, c)) c->complete(std::move(r));  // refused (a full queue): finished already
}

REDKIT_DECL scan_range client::scan(std::string match, std::size_t count, std::string type) const {
    return scan_range(*this, std::move(match), count, std::move(type));
}

REDKIT_DECL void client::ping() const {
    const auto r = command<std::string>("PING");
    if (r != "PONG") throw error(errc::protocol_error, "redkit: PING: unexpected reply '" + r + "'");
}

REDKIT_DECL bool client::is_reachable() const noexcept {
    try {
        ping();
        return true;
    } catch (...) {
        return false;
    }
}

REDKIT_DECL connection client::dedicated() const {
    if (cluster_) return detail::dedicated_to(*cluster_, cluster_->home());
    return connection(pool_->shared_options());
}

REDKIT_DECL connection client::dedicated(std::string_view key) const {
    if (cluster_) {
        // a dedicated connection is made again after its server failed or its slot moved: read
        // the map first, unless it is fresh
        cluster_->refresh_if_older(std::chrono::seconds(1));
        return detail::dedicated_to(*cluster_, cluster_->owner(detail::slot_of(key)));
    }
    return connection(pool_->shared_options());
}

REDKIT_DECL const client_options& client::options() const noexcept { return pool_->options(); }

REDKIT_DECL std::size_t client::open_connections() const {
    std::size_t n = pool_->open_connections() + (shared_->connected() ? 1 : 0);
    if (cluster_) {
        for (const auto& node : cluster_->all_nodes()) {
            n += node->pool->open_connections() + (node->shared->connected() ? 1 : 0);
        }
    }
    return n;
}

REDKIT_DECL void client::report(const error& e) const noexcept { pool_->report(e); }

REDKIT_DECL lease client::borrow() const {
    if (cluster_) return cluster_->home()->pool->borrow();
    return pool_->borrow();
}

REDKIT_DECL lease client::borrow(std::string_view key) const {
    if (cluster_) return cluster_->owner(detail::slot_of(key))->pool->borrow();
    return pool_->borrow();
}

// ---- scan_range ----

REDKIT_DECL scan_range::scan_range(client c, std::string match, std::size_t count, std::string type)
    : client_(std::move(c)), match_(std::move(match)), count_(count), type_(std::move(type)) {
    if (count_ == 0) throw std::invalid_argument("redkit: scan: count must be at least 1");
}

REDKIT_DECL scan_range::iterator scan_range::begin() {
    if (!started_) {
        started_ = true;
        fetch_until_nonempty();
    }
    return exhausted() ? iterator() : iterator(this);
}

REDKIT_DECL void scan_range::advance() {
    ++index_;
    if (index_ >= batch_.size()) fetch_until_nonempty();
}

REDKIT_DECL void scan_range::fetch_until_nonempty() {
    batch_.clear();
    index_ = 0;
    if (!started_nodes_ && client_.cluster_) {
        nodes_ = client_.cluster_->primaries();  // SCAN walks each primary in turn
        started_nodes_ = true;
    }
    while (batch_.empty() && !finished_) {
        detail::argv a;
        a.push_all("SCAN", cursor_, "MATCH", match_, "COUNT", count_);
        if (!type_.empty()) a.push_all("TYPE", type_);
        detail::reply_ptr raw;
        if (nodes_.empty()) {
            raw = client_.execute(a, true);
        } else {
            auto& n = *nodes_[node_];
            try {
                raw = detail::execute(*n.pool, *n.shared, a, detail::traits_of("SCAN"), true);
            } catch (const error& e) {
                if (e.is_transport()) client_.cluster_->refresh(true);
                throw;
            }
        }
        using scan_reply = std::pair<std::string, std::vector<std::string>>;
        scan_reply r = detail::finish<scan_reply>(raw, a);
        cursor_ = std::move(r.first);
        batch_ = std::move(r.second);
        if (cursor_ == "0") {
            if (node_ + 1 < nodes_.size()) {
                ++node_;
            } else {
                finished_ = true;
            }
        }
    }
}

// ---- the process-wide client ----

namespace detail {
struct default_slot {
    std::mutex mutex;
    std::optional<client> instance;
};
// Never destroyed: threads still using the default client during static destruction stay safe.
inline default_slot& default_client_slot() {
    static default_slot* slot = new default_slot;
    return *slot;
}

REDKIT_DECL void report_to(const std::function<void(const error&)>& own, const client& c, const error& e) noexcept {
    if (own) {
        notify(own, e);
    } else {
        c.report(e);
    }
}
}  // namespace detail

REDKIT_DECL client default_client() {
    auto& slot = detail::default_client_slot();
    std::lock_guard<std::mutex> lock(slot.mutex);
    if (!slot.instance) {
        const char* url = std::getenv("REDIS_URL");
        slot.instance.emplace(parse_url(url && *url ? url : "redis://127.0.0.1:6379"));
    }
    return *slot.instance;
}

REDKIT_DECL void set_default_client(client c) {
    auto& slot = detail::default_client_slot();
    std::lock_guard<std::mutex> lock(slot.mutex);
    slot.instance = std::move(c);
}

REDKIT_DECL void reset_default_client() {
    auto& slot = detail::default_client_slot();
    std::lock_guard<std::mutex> lock(slot.mutex);
    slot.instance.reset();
}

}  // namespace v0
}  // namespace redkit
