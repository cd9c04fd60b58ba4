// SPDX-License-Identifier: MIT
// redkit::pipeline and redkit::transaction: many commands, one write, all replies read back.
//
// A pipeline borrows one connection from the client's pool at its first exec() and holds it until
// it is destroyed, so every exec() runs on that connection. submit() sends the batch on the
// client's shared connection instead, and returns a redkit::future of the replies (awaitable). Commands are encoded
// into a buffer of the pipeline's own; nothing reaches the connection until exec(), so a pipeline dropped without
// exec() leaves the connection clean.
//
// exec() returns one redkit::reply per queued command, in order; an error reply of one command is
// a value (reply::is_error(), or as<T>() throws server_error) and does not stop the others. A
// transport failure throws redkit::error and discards the connection; pipelines are not retried,
// since some of their commands may have run. Anything else that interrupts exec() once bytes were
// handed to the connection (an allocation failing while replies are read) also discards it: its
// replies would otherwise reach the next borrower. Not thread-safe: one thread at a time.
//
// A transaction wraps the queued commands in MULTI/EXEC: they run atomically, exec() returns the
// EXEC results; a command the server refuses to queue (syntax, unknown command) aborts the whole
// transaction with server_error(EXECABORT ...), and nothing runs. pipeline and transaction are
// distinct final types: neither converts to the other.
#pragma once

#include <redkit/client.hpp>
#include <redkit/config.hpp>
#include <redkit/detail/argv.hpp>
#include <redkit/error.hpp>
#include <redkit/future.hpp>
#include <redkit/pool.hpp>
#include <redkit/reply.hpp>
#include <redkit/script.hpp>

#include <cstddef>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace redkit {
inline namespace v0 {

namespace detail {
struct cluster_node_state;
struct io_status;

inline constexpr std::string_view multi_wire = "*1\r\n$5\r\nMULTI\r\n";
inline constexpr std::string_view exec_wire = "*1\r\n$4\r\nEXEC\r\n";
/// A transaction's result from its replies (MULTI's, each QUEUED, EXEC's): EXEC's elements, or
/// throws (EXECABORT with the first refused command's error; a WATCH abort).
REDKIT_DECL std::vector<reply> exec_results(std::vector<reply> all);

/// What pipeline and transaction share: the queued commands, their connection, and one exec.
class batch {
public:
    /// Borrows nothing yet: run() borrows a connection from `c`'s pool (on a cluster, from the
    /// node of the commands' slot) and keeps it for the next run().
    REDKIT_DECL batch(client c, bool atomic);

    REDKIT_DECL void queue(const argv& a);

    template <class Keys, class... Args>
    void queue_eval(const script& s, const Keys& keys, const Args&... args) {
        prepare(s);
        argv a;
        push_evalsha(a, s, keys, args...);
        queue(a);
    }

    std::size_t size() const noexcept { return queued_; }

    /// Sends the script preloads, prefix, the queued commands and suffix in one write; returns the
    /// replies from prefix to suffix (the preloads' replies are checked, not returned).
    REDKIT_DECL std::vector<reply> run(std::string_view prefix, std::string_view suffix);

    /// Sends the script loads, prefix, the queued commands and suffix as one request on the
    /// client's shared connection (on a cluster: a transaction to its slot's node, a pipeline's
    /// commands each to its own); the future holds the replies from prefix to suffix (for a
    /// transaction, EXEC's results). Throws std::invalid_argument when a queued command may not
    /// share a connection.
    REDKIT_DECL future<std::vector<reply>> submit(std::string_view prefix, std::string_view suffix);

private:
    // one queued command on a cluster: its slot, where its bytes are in buffer_, and where its
    // arguments are (args of them from arg_spans_[first_arg]), to send it again alone
    struct routed {
        int slot;  // -1: no key (sent with its neighbours)
        std::size_t begin, end;
        std::size_t first_arg, args;
    };

    // A script about to be queued: on a cluster remembered (the node is known at exec, and the
    // script is loaded there, in the same write, if that connection has not loaded it yet); else
    // a SCRIPT LOAD goes ahead of the batch when this connection has not loaded it.
    REDKIT_DECL void prepare(const script& s);
    REDKIT_DECL int slot_of_queued(const argv& a);
    REDKIT_DECL std::vector<reply> run_now(std::string_view prefix, std::string_view suffix);
    REDKIT_DECL void ensure_lease();
    // On a cluster: the connection to the owner of the batch's slot (kept while it stays the owner,
    // so a reused pipeline stays on one connection), and the SCRIPT LOADs it still needs.
    REDKIT_DECL void cluster_lease();
    REDKIT_DECL void submit_split(promise<std::vector<reply>> p, const std::string& bytes,
                                  const std::vector<std::pair<std::string, std::string>>& scripts,
                                  const std::vector<routed>& sent,
                                  const std::vector<std::pair<std::size_t, std::size_t>>& spans);
    REDKIT_DECL void queue_preloads(connection& c, std::string& buffer, std::vector<std::string>& shas);
    REDKIT_DECL std::vector<reply> run_split(std::vector<routed> sent,
                                             std::vector<std::pair<std::size_t, std::size_t>> spans);
    REDKIT_DECL void resend_redirected(std::vector<reply>& out, const std::vector<routed>& sent, std::string_view bytes,
                                       const std::vector<std::pair<std::size_t, std::size_t>>& spans);
    [[noreturn]] REDKIT_DECL void fail_transport(const io_status& st, const std::string& first);

    client client_;
    bool atomic_ = false;  // a transaction
    lease lease_;
    std::shared_ptr<cluster_node_state> lease_node_;              // on a cluster: whose connection lease_ is
    std::vector<std::pair<std::string, std::string>> scripts_;    // on a cluster: sha, source of queued scripts
    std::vector<routed> routed_;                                  // on a cluster: the queued commands, for routing
    std::vector<std::pair<std::size_t, std::size_t>> arg_spans_;  // on a cluster: (offset, length) in buffer_
    int slot_ = -1;            // on a cluster: the slot of the first command with a key
    bool multi_slot_ = false;  // on a cluster: the pipeline's keys span several slots
    std::string buffer_;
    std::size_t queued_ = 0;
    std::string query_names_;           // with an observer and observe_query_text: the queued commands' names
    std::string preload_buffer_;        // SCRIPT LOAD of scripts this connection has not seen
    std::vector<std::string> preload_;  // their shas
    std::string first_command_;
    std::string unshareable_;  // the first queued command that may not go on the shared connection
};

}  // namespace detail

/// Many commands in one write, their replies read back in order.
///
/// @code
/// redkit::pipeline p(redis);
/// p.command("SET", "a", 1).command("INCR", "a").command("GET", "a");
/// std::vector<redkit::reply> r = p.exec();   // r[1].as<long long>() == 2
/// @endcode
class pipeline final {
public:
    /// A pipeline of `c`'s; connects to nothing yet (exec() borrows a connection from the pool).
    explicit pipeline(client c) : batch_(std::move(c), false) {}

    /// Queues a command (arguments as for client::command). Throws std::invalid_argument for an
    /// empty argument list (nothing is queued).
    template <class... Args>
    pipeline& command(const Args&... args) {
        detail::argv a;
        a.push_all(args...);
        batch_.queue(a);
        return *this;
    }

    /// Queues EVALSHA of a script. When this connection has not loaded the script yet, a SCRIPT
    /// LOAD is queued first in the same write (its reply is not returned).
    template <class Keys = std::initializer_list<std::string_view>, class... Args>
    pipeline& eval(const script& s, const Keys& keys, const Args&... args) {
        batch_.queue_eval(s, keys, args...);
        return *this;
    }

    /// Number of commands queued since the last exec().
    std::size_t size() const noexcept { return batch_.size(); }

    /// Sends everything queued in one write and reads every reply. The pipeline is empty
    /// afterwards and may be reused (on the same connection, if it is still healthy).
    std::vector<reply> exec() { return batch_.run({}, {}); }

    /// Like exec(), without waiting: sends everything queued in one write on the client's shared
    /// connection (the one submit() uses; the pipeline borrows nothing), and the redkit::future
    /// holds the replies (get(), then(), co_await). The commands go out together, in order, with
    /// no other caller's between them. A script is loaded (SCRIPT LOAD) ahead of them in the same
    /// write. Never retried: a transport failure fails the future. The pipeline is empty afterwards.
    /// On a cluster, each command goes to its own slot's node (following redirections, waiting
    /// out a failover), and the replies come back in the order queued. Throws
    /// std::invalid_argument, sending nothing, when a queued command blocks or holds connection
    /// state (BLPOP, SUBSCRIBE, SELECT, WATCH...).
    future<std::vector<reply>> submit() { return batch_.submit({}, {}); }

private:
    detail::batch batch_;
};

/// MULTI ... EXEC: the queued commands run atomically, in one round trip.
///
/// @code
/// redkit::transaction tx(redis);
/// tx.command("INCR", "orders:count").command("LPUSH", "orders:recent", id);
/// auto results = tx.exec();  // results[0].as<long long>()
/// @endcode
class transaction final {
public:
    /// A transaction of `c`'s; connects to nothing yet (exec() borrows a connection from the pool).
    explicit transaction(client c) : batch_(std::move(c), true) {}

    /// Queues a command inside the transaction. Throws std::invalid_argument for an empty
    /// argument list (nothing is queued).
    template <class... Args>
    transaction& command(const Args&... args) {
        detail::argv a;
        a.push_all(args...);
        batch_.queue(a);
        return *this;
    }

    /// Queues EVALSHA of a script inside the transaction (a SCRIPT LOAD, when needed, goes before
    /// MULTI in the same write).
    template <class Keys = std::initializer_list<std::string_view>, class... Args>
    transaction& eval(const script& s, const Keys& keys, const Args&... args) {
        batch_.queue_eval(s, keys, args...);
        return *this;
    }

    /// Number of commands queued since the last exec().
    std::size_t size() const noexcept { return batch_.size(); }

    /// Runs MULTI, the queued commands and EXEC; returns the results of the queued commands.
    /// Throws server_error (EXECABORT, with the first refused command's error) when the server
    /// refused to queue a command; nothing ran then.
    REDKIT_DECL std::vector<reply> exec();

    /// Like exec(), without waiting: MULTI, the queued commands and EXEC go out in one write on
    /// the client's shared connection (the one submit() uses), and the redkit::future holds
    /// EXEC's results, or the error exec() would have thrown. No other caller's command comes
    /// between MULTI and EXEC. WATCH cannot be used this way (it holds connection state): a
    /// check-and-set transaction needs exec() on its own connection. Never retried once it may
    /// have run. On a cluster it goes whole to its slot's node (a redirection aborts it, as for
    /// exec()). Throws std::invalid_argument, sending nothing, when a queued command may not share
    /// a connection.
    future<std::vector<reply>> submit() { return batch_.submit(detail::multi_wire, detail::exec_wire); }

private:
    detail::batch batch_;
};

}  // namespace v0
}  // namespace redkit

#if REDKIT_HEADER_ONLY
#include <redkit/impl/pipeline.ipp>
#endif
