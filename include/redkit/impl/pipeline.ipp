// SPDX-License-Identifier: MIT
// redkit::pipeline and redkit::transaction: out-of-line definitions (pipeline.hpp).
#pragma once

#include <redkit/core/io/connection_access.hpp>
#include <redkit/core/topology/cluster.hpp>
#include <redkit/core/topology/slots.hpp>
#include <redkit/pipeline.hpp>

#include <atomic>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>

namespace redkit {
inline namespace v0 {
namespace detail {

REDKIT_DECL batch::batch(client c, bool atomic) : client_(std::move(c)), atomic_(atomic) {}

REDKIT_DECL void batch::queue(const argv& a) {
    require_arguments(a);
    const int slot = client_.cluster_ ? slot_of_queued(a) : -1;
    if (first_command_.empty()) first_command_ = std::string(a.command_name());
    if (client_.options().observe_query_text && client_.options().observer) {  // the batch's query text
        if (!query_names_.empty()) query_names_ += ' ';
        query_names_.append(a.command_name());
    }
    if (unshareable_.empty() && !traits_of(a.command_name(), a.size() > 1 ? a.at(1) : "").shareable) {
        unshareable_ = std::string(a.command_name());
    }
    const std::size_t begin = buffer_.size();
    append_resp(buffer_, a);
    if (client_.cluster_) {
        // where each argument's bytes are ("$<n>\r\n<bytes>\r\n"): a redirected command is sent
        // again from them
        const std::size_t first_arg = arg_spans_.size();
        std::size_t at = buffer_.find('\n', begin) + 1;  // past "*<argc>\r\n"
        for (std::size_t i = 0; i < a.size(); ++i) {
            at = buffer_.find('\n', at) + 1;  // past "$<len>\r\n"
            arg_spans_.emplace_back(at, a.at(i).size());
            at += a.at(i).size() + 2;
        }
        routed_.push_back({slot, begin, buffer_.size(), first_arg, a.size()});
    }
    ++queued_;
}

REDKIT_DECL void batch::prepare(const script& s) {
    // the connection is known at exec (a cluster's node, the lease, or the shared connection for
    // submit()): the script is loaded there, in the same write, if that connection lacks it
    bool known = false;
    for (const auto& [sha, source] : scripts_) known = known || sha == s.sha1();
    if (!known) scripts_.emplace_back(s.sha1(), s.source());
}

REDKIT_DECL int batch::slot_of_queued(const argv& a) {
    const key_positions keys(a);
    if (keys.kind() == route_kind::broadcast) {
        throw std::invalid_argument("redkit: " + std::string(atomic_ ? "transaction" : "pipeline") + ": " +
                                    std::string(a.command_name()) +
                                    " runs on every primary of a cluster; send it with client::command");
    }
    int slot = keys.kind() == route_kind::keyed ? keys.single_slot() : -1;
    if (slot >= 0 && slot_ >= 0 && slot != slot_) {
        if (atomic_) {
            throw std::invalid_argument("redkit: transaction: " + std::string(a.command_name()) + " " +
                                        std::string(a.first_key().substr(0, 64)) + " is in cluster slot " +
                                        std::to_string(slot) + ", the transaction's keys in slot " +
                                        std::to_string(slot_) +
                                        "; a transaction runs on one node: give its keys one hash tag");
        }
        multi_slot_ = true;
    }
    if (slot_ < 0) slot_ = slot;
    return slot;
}

REDKIT_DECL void batch::ensure_lease() {
    if (!lease_ || lease_->broken()) {
        lease_.reset();
        lease_ = client_.borrow();
    }
}

REDKIT_DECL void batch::cluster_lease() {
    std::shared_ptr<cluster_node_state> node;
    try {
        node = slot_ >= 0 ? client_.cluster_->owner(slot_) : client_.cluster_->home();
    } catch (const error&) {
        // no owner known right now: borrow_slot below waits for one
    }
    if (!lease_ || lease_->broken() || !node || lease_node_ != node) {
        lease_.reset();
        lease_ = borrow_slot(*client_.cluster_, slot_, lease_node_);
    }
    queue_preloads(*lease_, preload_buffer_, preload_);
}

REDKIT_DECL void batch::queue_preloads(connection& c, std::string& buffer, std::vector<std::string>& shas) {
    const auto& loaded = connection_access::loaded_scripts(c);
    for (const auto& [sha, source] : scripts_) {
        if (loaded.count(sha) != 0) continue;
        argv load;
        load.push_all("SCRIPT", "LOAD", source);
        append_resp(buffer, load);
        shas.push_back(sha);
    }
}

REDKIT_DECL void batch::fail_transport(const io_status& st, const std::string& first) {
    const std::string what = first.empty() ? std::string("pipeline") : "pipeline (" + first + " ...)";
    error e = transport_error(st, what, {});
    client_.report(e);
    lease_.reset();
    throw e;
}

REDKIT_DECL std::vector<reply> batch::run(std::string_view prefix, std::string_view suffix) {
    const client_options& o = client_.options();
    if (!o.observer || queued_ == 0) return run_now(prefix, suffix);
    const std::unique_ptr<command_watch> w =
        watch_command(o, atomic_ ? "MULTI" : "PIPELINE", {}, std::move(query_names_), queued_, command_path::pooled);
    query_names_.clear();
    std::vector<reply> out;
    try {
        out = run_now(prefix, suffix);
    } catch (const server_error& e) {
        w->end_with_error_text(e.server_message());
        throw;
    } catch (...) {
        w->end_failed(errc_of(std::current_exception(), errc::io_error));
        throw;
    }
    if (lease_) w->server = connection_access::server(*lease_);
    for (const reply& r : out) {
        if (r.is_error()) {
            w->end_with_error_text(r.text());
            return out;
        }
    }
    w->end_with(nullptr);
    return out;
}

REDKIT_DECL std::vector<reply> batch::run_now(std::string_view prefix, std::string_view suffix) {
    unshareable_.clear();
    std::vector<routed> sent = std::move(routed_);
    routed_.clear();
    std::vector<std::pair<std::size_t, std::size_t>> spans = std::move(arg_spans_);
    arg_spans_.clear();
    if (multi_slot_) return run_split(std::move(sent), std::move(spans));
    if (client_.cluster_) {
        cluster_lease();
        slot_ = -1;
    } else {
        ensure_lease();
        queue_preloads(*lease_, preload_buffer_, preload_);
    }
    scripts_.clear();
    const std::vector<std::string> preload = std::move(preload_);
    const std::size_t expected = queued_ + (prefix.empty() ? 0 : 1) + (suffix.empty() ? 0 : 1);
    const std::string first = std::move(first_command_);  // names the pipeline in errors
    preload_.clear();
    queued_ = 0;
    query_names_.clear();
    first_command_.clear();
    if (expected == 0 && preload.empty()) return {};

    // From the first byte handed to the connection until the last reply is read, an exception
    // (bad_alloc in a reply's copy, say) leaves replies unread: the connection must not go back.
    struct discard_on_throw {
        lease& held;
        bool armed = true;
        ~discard_on_throw() {
            if (armed && held) connection_access::poison(*held);
        }
    } guard{lease_};

    // a failover the sentinels announced is waited out; a primary replaced meanwhile fails the
    // batch unsent (its scripts and WATCHes were on the old one)
    if (!connection_access::await_failover(*lease_)) fail_transport(connection_access::failed_over(), first);
    // each piece goes straight into the connection's output buffer: no joined copy
    transport& wire = connection_access::wire(*lease_);
    for (const std::string_view piece :
         {std::string_view(preload_buffer_), prefix, std::string_view(buffer_), suffix}) {
        if (!piece.empty()) wire.append_formatted(piece);
    }
    preload_buffer_.clear();
    std::string sent_bytes;  // on a cluster: to send a redirected command again
    if (client_.cluster_) sent_bytes.swap(buffer_);
    buffer_.clear();
    if (auto st = wire.flush(); !st.ok()) fail_transport(st, first);
    std::string load_error;
    for (std::size_t i = 0; i < preload.size(); ++i) {
        reply_ptr r;
        if (auto st = wire.read(r); !st.ok()) fail_transport(st, first);
        if (raw_is_error(r.get()) && load_error.empty()) load_error.assign(raw_str(r.get()));
    }
    std::vector<reply> out;
    out.reserve(expected);
    const origin from{};
    for (std::size_t i = 0; i < expected; ++i) {
        reply_ptr r;
        if (auto st = wire.read(r); !st.ok()) fail_transport(st, first);
        out.emplace_back(view_access::of(r.get(), from));
    }
    guard.armed = false;  // every reply read: the connection is in step
    if (!load_error.empty()) throw server_error(load_error, "redkit: SCRIPT LOAD: " + load_error);
    auto& loaded = connection_access::loaded_scripts(*lease_);
    for (const auto& sha : preload) loaded.insert(sha);
    for (const auto& r : out) {
        if (r.is_error() && is_noscript(r.text())) {
            loaded.clear();  // someone ran SCRIPT FLUSH; reload next time
            break;
        }
    }
    if (client_.cluster_ && prefix.empty()) resend_redirected(out, sent, sent_bytes, spans);
    return out;
}

// A cluster pipeline whose keys span slots: the commands of each node in one write on one of its
// connections, the replies put back in the order the commands were queued.
REDKIT_DECL std::vector<reply> batch::run_split(std::vector<routed> sent,
                                                std::vector<std::pair<std::size_t, std::size_t>> spans) {
    const std::string first = std::move(first_command_);
    first_command_.clear();
    std::string bytes;
    bytes.swap(buffer_);
    queued_ = 0;
    query_names_.clear();
    slot_ = -1;
    multi_slot_ = false;
    const std::vector<std::pair<std::string, std::string>> scripts = std::move(scripts_);
    scripts_.clear();

    // a command without a key goes with the one before it (WAIT after the writes it waits for)
    int last = -1;
    for (auto& r : sent) {
        if (r.slot < 0) r.slot = last;
        last = r.slot;
    }
    for (auto& r : sent) {
        if (r.slot >= 0) break;
        r.slot = -2;  // keyless at the front: the cluster's home node
    }
    std::vector<std::shared_ptr<cluster_node_state>> nodes;
    std::vector<std::vector<std::size_t>> per_node;
    for (std::size_t i = 0; i < sent.size(); ++i) {
        const auto node = sent[i].slot >= 0 ? client_.cluster_->owner(sent[i].slot) : client_.cluster_->home();
        std::size_t k = 0;
        while (k < nodes.size() && nodes[k] != node) ++k;
        if (k == nodes.size()) {
            nodes.push_back(node);
            per_node.emplace_back();
        }
        per_node[k].push_back(i);
    }
    // every node's write first, then every node's replies: about one round trip, not one per node
    struct leg {
        lease held;
        std::vector<std::string> preloads;  // shas loaded ahead of the commands
        bool in_step = true;                // false once bytes are out and replies unread
    };
    std::vector<leg> legs(nodes.size());
    struct discard_unread {
        std::vector<leg>& legs;
        ~discard_unread() {
            for (auto& l : legs) {
                if (!l.in_step && l.held) connection_access::poison(*l.held);
            }
        }
    } guard{legs};
    const auto fail = [&](leg& l, const io_status& st) {
        const std::string what = first.empty() ? std::string("pipeline") : "pipeline (" + first + " ...)";
        error e = transport_error(st, what, {});
        client_.report(e);
        l.in_step = false;
        throw e;
    };
    for (std::size_t k = 0; k < nodes.size(); ++k) {
        std::shared_ptr<cluster_node_state> at;
        legs[k].held = borrow_slot(*client_.cluster_, sent[per_node[k].front()].slot, at);
        transport& wire = connection_access::wire(*legs[k].held);
        std::string preload;
        scripts_ = scripts;
        queue_preloads(*legs[k].held, preload, legs[k].preloads);
        scripts_.clear();
        if (!preload.empty()) wire.append_formatted(preload);
        for (const std::size_t i : per_node[k]) {
            wire.append_formatted(std::string_view(bytes).substr(sent[i].begin, sent[i].end - sent[i].begin));
        }
        legs[k].in_step = false;
        if (auto st = wire.flush(); !st.ok()) fail(legs[k], st);
    }
    std::vector<reply> out(sent.size());
    std::string load_error;
    for (std::size_t k = 0; k < nodes.size(); ++k) {
        transport& wire = connection_access::wire(*legs[k].held);
        for (std::size_t p = 0; p < legs[k].preloads.size(); ++p) {
            reply_ptr r;
            if (auto st = wire.read(r); !st.ok()) fail(legs[k], st);
            if (raw_is_error(r.get()) && load_error.empty()) load_error.assign(raw_str(r.get()));
        }
        const origin from{};
        for (const std::size_t i : per_node[k]) {
            reply_ptr r;
            if (auto st = wire.read(r); !st.ok()) fail(legs[k], st);
            out[i] = reply(view_access::of(r.get(), from));
        }
        legs[k].in_step = true;
        for (const auto& sha : legs[k].preloads) connection_access::loaded_scripts(*legs[k].held).insert(sha);
    }
    if (!load_error.empty()) throw server_error(load_error, "redkit: SCRIPT LOAD: " + load_error);
    resend_redirected(out, sent, bytes, spans);
    return out;
}

// Commands answered MOVED/ASK/TRYAGAIN (a resharding or failover under way) did not run: each is
// sent again alone through the client, which follows the redirection, from its arguments.
REDKIT_DECL void batch::resend_redirected(std::vector<reply>& out, const std::vector<routed>& sent,
                                          std::string_view bytes,
                                          const std::vector<std::pair<std::size_t, std::size_t>>& spans) {
    for (std::size_t i = 0; i < out.size() && i < sent.size(); ++i) {
        if (!out[i].is_error()) continue;
        const std::string& text = out[i].text();
        redirect to;
        const bool moved = parse_redirect(text, "MOVED", to);
        const bool again = moved || parse_redirect(text, "ASK", to) || cluster_busy(text);
        if (!again) continue;
        if (moved) client_.cluster_->moved(to);
        argv a;
        for (std::size_t j = sent[i].first_arg; j < sent[i].first_arg + sent[i].args; ++j) {
            a.push_view(bytes.substr(spans[j].first, spans[j].second));
        }
        const reply_ptr r = client_.execute(a, false);
        out[i] = reply(view_access::of(r.get(), origin{}));
    }
}

// A batch submitted whole (batch::submit): its replies, from the SCRIPT LOADs' to the last, made
// into the batch's result on the thread that read them.
class batch_completion final : public mux_completion {
public:
    batch_completion(promise<std::vector<reply>> p, std::size_t preloads, bool atomic, std::string first)
        : promise_(std::move(p)), preloads_(preloads), atomic_(atomic), first_(std::move(first)) {}

    void complete(std::shared_ptr<mux_request> r) override {
        std::exception_ptr failed;
        try {
            promise_.set_value(results(*r));
            return;
        } catch (...) {
            failed = std::current_exception();
        }
        promise_.set_exception(failed);
    }

private:
    std::vector<reply> results(mux_request& r) const {
        if (r.refused) std::rethrow_exception(r.refused);
        if (!r.status.ok()) {
            throw transport_error(r.status, first_.empty() ? std::string("pipeline") : "pipeline (" + first_ + " ...)",
                                  {});
        }
        std::vector<reply_ptr>& earlier = r.leading_replies;
        earlier.push_back(std::move(r.reply));
        std::string load_error;
        for (std::size_t i = 0; i < preloads_ && i < earlier.size(); ++i) {
            if (raw_is_error(earlier[i].get()) && load_error.empty()) load_error.assign(raw_str(earlier[i].get()));
        }
        if (!load_error.empty()) throw server_error(load_error, "redkit: SCRIPT LOAD: " + load_error);
        std::vector<reply> out;
        out.reserve(earlier.size() - preloads_);
        const origin from{};
        for (std::size_t i = preloads_; i < earlier.size(); ++i)
            out.emplace_back(view_access::of(earlier[i].get(), from));
        return atomic_ ? exec_results(std::move(out)) : out;
    }

    promise<std::vector<reply>> promise_;
    std::size_t preloads_;
    bool atomic_;
    std::string first_;
};

REDKIT_DECL future<std::vector<reply>> batch::submit(std::string_view prefix, std::string_view suffix) {
    if (!unshareable_.empty()) {
        throw std::invalid_argument(std::string("redkit: ") + (atomic_ ? "transaction" : "pipeline") +
                                    "::submit: " + unshareable_ +
                                    " blocks or holds connection state, and submit() sends on the shared "
                                    "connection; use exec()");
    }
    promise<std::vector<reply>> p(client_.options().on_error);
    future<std::vector<reply>> out = p.get_future();
    // the batch is empty from here, as after exec()
    std::string bytes = std::move(buffer_);
    buffer_.clear();
    const std::vector<std::pair<std::string, std::string>> scripts = std::move(scripts_);
    scripts_.clear();
    const std::vector<routed> sent = std::move(routed_);
    routed_.clear();
    const std::vector<std::pair<std::size_t, std::size_t>> spans = std::move(arg_spans_);
    arg_spans_.clear();
    const int slot = slot_;
    slot_ = -1;
    multi_slot_ = false;
    const std::size_t queued = queued_;
    queued_ = 0;
    std::string names = std::move(query_names_);
    query_names_.clear();
    std::string first = std::move(first_command_);
    first_command_.clear();
    preload_buffer_.clear();
    preload_.clear();
    unshareable_.clear();
    if (queued == 0) {
        p.set_value(std::vector<reply>{});
        return out;
    }
    if (client_.cluster_ && !atomic_) {
        submit_split(std::move(p), bytes, scripts, sent, spans);
        return out;
    }
    // the shared connection may lack a script: each is loaded in the same write, ahead
    auto r = std::make_shared<mux_request>();
    for (const auto& [sha, source] : scripts) {
        argv load;
        load.push_all("SCRIPT", "LOAD", source);
        append_resp(r->wire, load);
    }
    const std::size_t preloads = scripts.size();
    r->wire.append(prefix);
    r->wire += bytes;
    r->wire.append(suffix);
    const std::size_t replies = preloads + queued + (prefix.empty() ? 0 : 1) + (suffix.empty() ? 0 : 1);
    r->leading = static_cast<unsigned>(replies - 1);
    r->keep_leading = true;
    r->leading_replies.reserve(replies);
    r->command = atomic_ ? "EXEC" : first;
    r->watch = watch_command(client_.options(), atomic_ ? "MULTI" : "PIPELINE", {}, std::move(names), queued,
                             command_path::shared);
    std::unique_ptr<mux_completion> c =
        std::make_unique<batch_completion>(std::move(p), preloads, atomic_, std::move(first));
    if (client_.cluster_) {
        // a transaction: one slot (queue() checks), so one request to its owner, waiting out a
        // failover as a submitted command does; a redirection aborts it (EXECABORT), as exec()
        r->slot = slot;
        const auto node = slot >= 0 ? client_.cluster_->owner(slot) : client_.cluster_->home();
        (void)attach_detached(r, c);  // r is new: it cannot have finished
        cluster_hop::send(client_.cluster_, *node, r, false, 0);
        return out;
    }
    multiplexer& m = client_.shared_->get(*client_.pool_);
    m.submit(r);
    if (!m.attach(r, c)) c->complete(std::move(r));  // refused (a full queue): finished already
    return out;
}

// A cluster pipeline, submitted: each command on its own, to its slot's node (following
// redirections, waiting out failovers), its reply put back in its place.
REDKIT_DECL void batch::submit_split(promise<std::vector<reply>> p, const std::string& bytes,
                                     const std::vector<std::pair<std::string, std::string>>& scripts,
                                     const std::vector<routed>& sent,
                                     const std::vector<std::pair<std::size_t, std::size_t>>& spans) {
    struct join {
        join(promise<std::vector<reply>> q, std::size_t n) : done(std::move(q)), out(n), left(n) {}
        promise<std::vector<reply>> done;
        std::vector<reply> out;  // each slot written by its command's callback
        std::atomic<std::size_t> left;
        std::mutex mutex;
        std::exception_ptr failed;  // the first transport failure fails the whole pipeline
    };
    const auto all = std::make_shared<join>(std::move(p), sent.size());
    std::vector<std::shared_ptr<const std::string>> sources;
    for (const auto& [sha, source] : scripts) sources.push_back(std::make_shared<const std::string>(source));
    for (std::size_t i = 0; i < sent.size(); ++i) {
        argv a;
        for (std::size_t j = sent[i].first_arg; j < sent[i].first_arg + sent[i].args; ++j) {
            a.push_view(std::string_view(bytes).substr(spans[j].first, spans[j].second));
        }
        std::shared_ptr<const std::string> source;  // an EVALSHA of a queued script: EVAL after NOSCRIPT
        if (a.size() > 1 && a.command_name() == "EVALSHA") {
            for (std::size_t k = 0; k < scripts.size(); ++k) {
                if (scripts[k].first == a.at(1)) source = sources[k];
            }
        }
        std::shared_ptr<multiplexer> mux;
        future<reply> f =
            future_access<reply>::detached(source ? client_.submit_evalsha(a, source) : client_.submit_argv(a, mux));
        f.then([all, i](future<reply> g) {
            try {
                all->out[i] = g.get();  // an error reply is a value
            } catch (...) {
                std::lock_guard<std::mutex> lock(all->mutex);
                if (!all->failed) all->failed = std::current_exception();
            }
            if (all->left.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
            if (all->failed) {
                all->done.set_exception(all->failed);
            } else {
                all->done.set_value(std::move(all->out));
            }
        });
    }
}

REDKIT_DECL std::vector<reply> exec_results(std::vector<reply> all) {
    reply& exec_reply = all.back();
    if (exec_reply.is_error()) {
        std::string why = exec_reply.text();
        for (std::size_t i = 1; i + 1 < all.size(); ++i) {
            if (all[i].is_error()) {
                why += " (" + all[i].text() + ")";
                break;
            }
        }
        throw server_error(exec_reply.text(), "redkit: EXEC: " + why);
    }
    if (exec_reply.is_nil()) throw error(errc::invalid_state, "redkit: EXEC: transaction aborted");
    return exec_reply.elements();
}

}  // namespace detail

REDKIT_DECL std::vector<reply> transaction::exec() {
    const std::size_t n = batch_.size();
    std::vector<reply> all = batch_.run(detail::multi_wire, detail::exec_wire);
    if (n == 0 && all.empty()) return {};
    return detail::exec_results(std::move(all));
}

}  // namespace v0
}  // namespace redkit
