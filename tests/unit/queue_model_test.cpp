// SPDX-License-Identifier: MIT
// The queue's Lua against its data model (queue/detail/model.hpp), without a server. The Lua
// cannot include the C++ names, so this reads every script: each field it names on a job, meta
// or scheduler hash must be one the model lists, and each field the model lists must be used.
//
// How a script is read: it is cut into tokens, and every redis.call of a hash command (HGET,
// HSET, HMGET, HINCRBY, HDEL, HEXISTS, HSETNX...) is looked at. Its key says which hash it is:
// JOB .. <id> or <base> .. 'job:' .. <id> is a job, K_META or <base> .. 'meta' the meta hash,
// SCHED .. <id> a scheduler; a variable is followed to the assignment that gives it its value
// (or, for a function's parameter, its name: k is a job key, meta a meta key). The fields are the
// literals in the command's field places: for HSET every other argument, and for unpack(t) the
// field places of the table t as the script builds it (its constructor, then t[#t + 1] = ...
// appends; a table made by a function is read from that function's return). A hash command whose
// key or field place this cannot read fails the test, so a new way of writing one is not missed.
#include <redkit/core/io/raw.hpp>
#include <redkit/queue.hpp>
#include <redkit/queue/detail/lua.hpp>
#include <redkit/queue/detail/model.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace queue_model_scan {

namespace model = redkit::detail::queue_model;
namespace lua = redkit::detail::queue_lua;

struct token {
    enum kind_t { name, str, number, punct } kind;
    std::string text;  // a string literal's text without its quotes
    int line;
};

std::vector<token> tokenize(std::string_view s) {
    std::vector<token> out;
    int line = 1;
    std::size_t i = 0;
    while (i < s.size()) {
        const char c = s[i];
        if (c == '\n') {
            ++line;
            ++i;
        } else if (std::isspace(static_cast<unsigned char>(c))) {
            ++i;
        } else if (s.compare(i, 2, "--") == 0) {
            while (i < s.size() && s[i] != '\n') ++i;
        } else if (c == '\'' || c == '"') {
            std::size_t j = i + 1;
            while (j < s.size() && s[j] != c) j += s[j] == '\\' ? 2u : 1u;
            out.push_back({token::str, std::string(s.substr(i + 1, j - i - 1)), line});
            i = j + 1;
        } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
            std::size_t j = i;
            while (j < s.size() && (std::isalnum(static_cast<unsigned char>(s[j])) || s[j] == '_')) ++j;
            out.push_back({token::name, std::string(s.substr(i, j - i)), line});
            i = j;
        } else if (std::isdigit(static_cast<unsigned char>(c))) {
            std::size_t j = i;
            while (j < s.size() && (std::isalnum(static_cast<unsigned char>(s[j])) || s[j] == '.')) ++j;
            out.push_back({token::number, std::string(s.substr(i, j - i)), line});
            i = j;
        } else {
            std::size_t n = 1;
            for (const char* p : {"...", "..", "==", "~=", "<=", ">="}) {
                if (s.compare(i, std::char_traits<char>::length(p), p) == 0) {
                    n = std::char_traits<char>::length(p);
                    break;
                }
            }
            out.push_back({token::punct, std::string(s.substr(i, n)), line});
            i += n;
        }
    }
    return out;
}

// A run of tokens [begin, end).
struct span {
    std::size_t begin = 0, end = 0;
    std::size_t size() const { return end - begin; }
};

// The fields a script uses on each kind of hash, and what could not be read.
struct usage {
    std::set<std::string> job, meta, scheduler;
    std::vector<std::string> problems;
};

class reader {
public:
    reader(std::string script, std::vector<token> tokens) : script_(std::move(script)), t_(std::move(tokens)) {
        match_blocks();
    }

    void read(usage& u) {
        for (std::size_t i = 0; i + 3 < t_.size(); ++i) {
            if (is(i, "redis") && is(i + 1, ".") && (is(i + 2, "call") || is(i + 2, "pcall")) && is(i + 3, "(")) {
                read_call(i + 3, u);
            }
        }
    }

private:
    enum class hash { job, meta, scheduler, job_data, unknown };
    enum class mode { list, pairs };

    bool is(std::size_t i, std::string_view text) const {
        return i < t_.size() && t_[i].kind != token::str && t_[i].text == text;
    }
    bool is_str(std::size_t i) const { return i < t_.size() && t_[i].kind == token::str; }

    std::string text_of(span s) const {
        std::string out;
        for (std::size_t i = s.begin; i < s.end; ++i) {
            if (!out.empty()) out += ' ';
            out += t_[i].kind == token::str ? "'" + t_[i].text + "'" : t_[i].text;
        }
        return out;
    }

    void problem(usage& u, std::size_t at, const std::string& what) const {
        u.problems.push_back(script_ + " (line " + std::to_string(t_[std::min(at, t_.size() - 1)].line) +
                             " of prelude + extras + flow + script): " + what);
    }

    // The index just past the bracket that closes the one at i.
    std::size_t close_of(std::size_t i) const {
        int depth = 0;
        for (std::size_t j = i; j < t_.size(); ++j) {
            if (is(j, "(") || is(j, "{") || is(j, "[")) ++depth;
            if (is(j, ")") || is(j, "}") || is(j, "]")) {
                if (--depth == 0) return j + 1;
            }
        }
        return t_.size();
    }

    // Splits [begin, end) at the top-level tokens `sep`.
    std::vector<span> split(span s, std::string_view sep) const {
        std::vector<span> out;
        std::size_t from = s.begin;
        for (std::size_t j = s.begin; j < s.end;) {
            if (is(j, "(") || is(j, "{") || is(j, "[")) {
                j = close_of(j);
            } else if (is(j, sep)) {
                out.push_back({from, j});
                from = ++j;
            } else {
                ++j;
            }
        }
        if (from < s.end || !out.empty()) out.push_back({from, s.end});
        return out;
    }

    // An expression that starts at i: until the end of its line, or of the brackets open there,
    // or a keyword that starts another statement.
    span expression_at(std::size_t i) const {
        static const std::set<std::string> ends{"end",    "then", "do",  "else",  "elseif", "local",
                                                "return", "if",   "for", "while", "until",  "repeat"};
        const int line = i < t_.size() ? t_[i].line : 0;
        std::size_t j = i;
        while (j < t_.size() && t_[j].line == line && !(t_[j].kind == token::name && ends.count(t_[j].text))) {
            j = is(j, "(") || is(j, "{") || is(j, "[") ? close_of(j) : j + 1;
        }
        return {i, std::min(j, t_.size())};
    }

    // Lua blocks: function/if/do/repeat ... end/until. For each `function`, where its body ends;
    // for each `if`, its `then`s and `else`s and its `end`.
    void match_blocks() {
        struct open {
            std::size_t at;
            bool is_if;
        };
        std::vector<open> stack;
        block_end_.assign(t_.size(), 0);
        for (std::size_t i = 0; i < t_.size(); ++i) {
            if (t_[i].kind != token::name) continue;
            const std::string& w = t_[i].text;
            if (w == "function" || w == "if" || w == "do" || w == "repeat") {
                stack.push_back({i, w == "if"});
            } else if ((w == "end" || w == "until") && !stack.empty()) {
                block_end_[stack.back().at] = i;
                stack.pop_back();
            }
        }
    }

    // Whether an assignment at `a` is seen at `p`: no function that holds `a` ends before `p`.
    bool visible(std::size_t a, std::size_t p) const {
        for (std::size_t f = 0; f < a; ++f) {
            if (is(f, "function") && block_end_[f] > a && block_end_[f] < p) return false;
        }
        return true;
    }

    // The value `name` has at p: the expression of the nearest assignment before p, or nullopt
    // with *param set when the nearest binding is a parameter of a function holding p.
    std::optional<span> value_of(const std::string& name, std::size_t p, bool* param = nullptr) const {
        for (std::size_t i = p; i-- > 0;) {
            if (t_[i].kind == token::name && t_[i].text == name && is(i + 1, "=") && i > 0 && !is(i - 1, ".") &&
                !is(i - 1, ",") && !is(i - 1, ":") && visible(i, p)) {
                return expression_at(i + 2);
            }
            if (is(i, "function") && block_end_[i] > p) {
                std::size_t j = i + 1;
                while (j < t_.size() && !is(j, "(")) ++j;
                for (std::size_t k = j + 1; k < t_.size() && !is(k, ")"); ++k) {
                    if (t_[k].kind == token::name && t_[k].text == name) {
                        if (param) *param = true;
                        return std::nullopt;
                    }
                }
            }
        }
        return std::nullopt;
    }

    hash kind_of_key(span key, std::size_t p, int depth = 0) const {
        const auto parts = split(key, "..");
        if (parts.size() == 1 && parts[0].size() == 1 && t_[key.begin].kind == token::name) {
            const std::string& n = t_[key.begin].text;
            if (n == "K_META") return hash::meta;
            bool param = false;
            if (const auto v = value_of(n, p, &param); v && depth < 8) return kind_of_key(*v, v->begin, depth + 1);
            if (param && n == "k") return hash::job;
            if (param && n == "meta") return hash::meta;
            return hash::unknown;
        }
        const auto str_part = [&](const span& s, std::string_view text) {
            return s.size() == 1 && is_str(s.begin) && t_[s.begin].text == text;
        };
        const auto name_part = [&](const span& s, std::string_view text) { return s.size() == 1 && is(s.begin, text); };
        const span last = parts.back();
        if (last.size() == 1 && is_str(last.begin) && t_[last.begin].text.rfind(':', 0) == 0) return hash::job_data;
        if (parts.size() == 2 && name_part(parts[0], "JOB")) return hash::job;
        if (parts.size() == 3 && str_part(parts[1], std::string(model::job) + ":")) return hash::job;
        if (parts.size() == 2 && name_part(parts[0], "SCHED")) return hash::scheduler;
        // the groups' hashes (gactive, gpaused, gcap): their fields are group names, data
        if (parts.size() == 1 && key.size() == 4 && is(key.begin, "queue_key") && is_str(key.begin + 2)) {
            const std::string& suffix = t_[key.begin + 2].text;
            if (suffix == model::groups_active || suffix == model::groups_paused || suffix == model::groups_cap) {
                return hash::job_data;
            }
        }
        if (parts.size() == 2 && str_part(parts[1], model::suffix(redkit::detail::queue_key::meta))) {
            return hash::meta;
        }
        return hash::unknown;
    }

    // The field literals of table `name` as seen at p (mode: every element, or every other one).
    void table_fields(const std::string& name, mode m, std::size_t p, std::set<std::string>& out, usage& u,
                      int depth = 0) const {
        if (depth > 8) return problem(u, p, "tables nest too deep at " + name);
        const auto v = value_of(name, p);
        if (!v) return problem(u, p, "cannot find the table " + name);
        std::size_t count = 0;
        if (is(v->begin, "{")) {
            const std::size_t close = close_of(v->begin);
            std::size_t index = 0;
            for (span e : split({v->begin + 1, close - 1}, ",")) {
                if (e.size() == 0) continue;
                const auto kv = split(e, "=");  // {[4] = 'delay'} or {x = 'y'}: the value
                if (kv.size() == 2) e = kv[1];
                const bool field_place = m == mode::list || index % 2 == 0;
                if (field_place) literal(e, out, u);
                ++index;
            }
            count = index;
        } else if (t_[v->begin].kind == token::name && is(v->begin + 1, "(")) {
            // made by a function: the table that function returns
            const std::string& fn = t_[v->begin].text;
            std::size_t f = 0;
            while (f + 1 < t_.size() && !(is(f, "function") && is(f + 1, fn))) ++f;
            if (f + 1 >= t_.size()) return problem(u, p, "cannot find the function " + fn);
            std::size_t r = f;
            while (r < block_end_[f] && !(is(r, "return") && t_[r + 1].kind == token::name)) ++r;
            if (r >= block_end_[f]) return problem(u, p, "the function " + fn + " returns no table by name");
            table_fields(t_[r + 1].text, m, r, out, u, depth + 1);
        } else {
            return problem(u, p, "cannot read the table " + name + " = " + text_of(*v));
        }
        // then its appends name[#name + 1] = e up to p, each branch of an if from the count at its start
        std::vector<std::size_t> branch_start;  // per open if: the count at its `then`
        std::vector<bool> opens_if;
        for (std::size_t i = v->end; i < p; ++i) {
            if (is(i, "if")) {
                opens_if.push_back(true);
                branch_start.push_back(count);
            } else if (is(i, "function") || is(i, "do") || is(i, "repeat")) {
                opens_if.push_back(false);
            } else if ((is(i, "end") || is(i, "until")) && !opens_if.empty()) {
                if (opens_if.back()) branch_start.pop_back();
                opens_if.pop_back();
            } else if ((is(i, "else") || is(i, "elseif")) && !branch_start.empty()) {
                count = branch_start.back();
            } else if (is(i, name) && is(i + 1, "[") && is(i + 2, "#") && is(i + 3, name) && is(i + 4, "+") &&
                       is(i + 5, "1") && is(i + 6, "]") && is(i + 7, "=") && visible(i, p)) {
                const span e = expression_at(i + 8);
                const bool field_place = m == mode::list || count % 2 == 0;
                if (!field_place) {
                    ++count;  // a value
                } else if (e.size() >= 2 && t_[e.begin].kind == token::name && is(e.begin + 1, "[") &&
                           close_of(e.begin + 1) == e.end) {
                    // another table's elements: field names when a value append follows (a loop of
                    // pairs), else the whole table of pairs copied (a loop of one append)
                    const std::size_t n = e.end;
                    const bool names = m == mode::list || (is(n, name) && is(n + 1, "[") && is(n + 2, "#"));
                    table_fields(t_[e.begin].text, names ? mode::list : mode::pairs, i, out, u, depth + 1);
                    count += names ? 1 : 0;
                } else {
                    literal(e, out, u);
                    ++count;
                }
                i = e.end - 1;
            }
        }
    }

    void literal(span e, std::set<std::string>& out, usage& u) const {
        if (e.size() == 1 && is_str(e.begin)) {
            out.insert(t_[e.begin].text);
        } else {
            problem(u, e.begin, "a field place holds " + text_of(e) + ", not a literal");
        }
    }

    void read_call(std::size_t open, usage& u) {
        const std::size_t close = close_of(open);
        const auto args = split({open + 1, close - 1}, ",");
        if (args.empty() || args[0].size() != 1 || !is_str(args[0].begin)) return;
        const std::string cmd = t_[args[0].begin].text;
        if (cmd.empty() || cmd[0] != 'H') return;
        static const std::set<std::string> no_fields{"HGETALL", "HLEN", "HKEYS", "HVALS"};
        static const std::set<std::string> one_field{"HGET", "HEXISTS", "HINCRBY", "HINCRBYFLOAT", "HSETNX", "HSTRLEN"};
        static const std::set<std::string> all_fields{"HMGET", "HDEL"};
        static const std::set<std::string> pair_fields{"HSET", "HMSET"};
        if (no_fields.count(cmd)) return;
        if (!one_field.count(cmd) && !all_fields.count(cmd) && !pair_fields.count(cmd)) {
            return problem(u, open, cmd + ": a hash command this test does not read yet");
        }
        if (args.size() < 3) return problem(u, open, cmd + " without a field");
        const hash h = kind_of_key(args[1], args[1].begin);
        if (h == hash::job_data) return;  // :results, :ignored: their fields are data
        if (h == hash::unknown) return problem(u, open, cmd + " on a key this test cannot place: " + text_of(args[1]));
        std::set<std::string>& out = h == hash::job ? u.job : h == hash::meta ? u.meta : u.scheduler;
        const std::size_t last = one_field.count(cmd) ? 3 : args.size();
        for (std::size_t a = 2; a < last; ++a) {
            const bool field_place = !pair_fields.count(cmd) || a % 2 == 0;
            const span e = args[a];
            if (e.size() == 4 && is(e.begin, "unpack") && is(e.begin + 1, "(") && t_[e.begin + 2].kind == token::name) {
                table_fields(t_[e.begin + 2].text, pair_fields.count(cmd) ? mode::pairs : mode::list, e.begin, out, u);
                if (a + 1 != args.size()) problem(u, e.begin, "unpack() before the last argument");
            } else if (field_place) {
                literal(e, out, u);
            }
        }
    }

    std::string script_;
    std::vector<token> t_;
    std::vector<std::size_t> block_end_;  // for a block's opening keyword, its `end`
};

// Reads one script as it runs: after the prelude, extras and flow helpers (a superset of what
// each script is given).
void read_script(const std::string& name, std::string_view body, usage& u) {
    std::string text;
    for (std::string_view part : {lua::prelude, lua::extras, lua::flow, body}) text.append(part);
    reader(name, tokenize(text)).read(u);
}

struct script_body {
    const char* name;
    std::string_view body;
};

// Every queue script (the test below checks this list against queue/detail/lua/*.hpp).
const script_body all_scripts[] = {
    {"prelude", lua::prelude},
    {"extras", lua::extras},
    {"flow", lua::flow},
    {"move", lua::move},
    {"renew", lua::renew},
    {"cancel", lua::cancel},
    {"group", lua::group},
    {"groups", lua::groups},
    {"stalled", lua::stalled},
    {"progress", lua::progress},
    {"add", lua::add},
    {"add_flow", lua::add_flow},
    {"pause", lua::pause},
    {"retry", lua::retry},
    {"remove", lua::remove},
    {"drain", lua::drain},
    {"obliterate", lua::obliterate},
    {"workers", lua::workers},
    {"clean", lua::clean},
    {"events", lua::events},
    {"limit", lua::limit},
    {"scheduler_upsert", lua::scheduler_upsert},
    {"scheduler_next", lua::scheduler_next},
    {"scheduler_remove", lua::scheduler_remove},
    {"scheduler_list", lua::scheduler_list},
    {"scheduler_stuck", lua::scheduler_stuck},
    {"get", lua::get},
    {"counts", lua::counts},
    {"list", lua::list},
    {"log", lua::log},
    {"logs", lua::logs},
    {"metrics", lua::metrics},
    {"limit_info", lua::limit_info},
};

usage read_all() {
    usage u;
    for (const auto& s : all_scripts) read_script(s.name, s.body, u);
    return u;
}

template <class Range>
std::set<std::string> set_of(const Range& r) {
    std::set<std::string> out;
    for (std::string_view v : r) out.emplace(v);
    return out;
}

// "x, y" of the elements of a that b lacks.
std::string missing(const std::set<std::string>& a, const std::set<std::string>& b) {
    std::string out;
    for (const auto& x : a) {
        if (!b.count(x)) out += (out.empty() ? "" : ", ") + x;
    }
    return out;
}

std::string problems_of(const usage& u) {
    std::string out;
    for (const auto& p : u.problems) out += p + "\n";
    return out;
}

}  // namespace queue_model_scan

TEST(QueueModel, EveryJobFieldTheLuaUsesIsInTheModelAndEveryOneListedIsUsed) {
    using namespace queue_model_scan;
    const usage u = read_all();
    ASSERT_TRUE(u.problems.empty()) << problems_of(u);
    const auto listed = set_of(model::job_fields);
    EXPECT_EQ(listed.size(), std::size(model::job_fields)) << "a job field listed twice";
    EXPECT_EQ(missing(u.job, listed), "") << "job hash fields the Lua uses that model.hpp does not list";
    EXPECT_EQ(missing(listed, u.job), "") << "job hash fields model.hpp lists that no script uses";
}

TEST(QueueModel, EveryMetaAndSchedulerFieldTheLuaUsesIsInTheModelAndEveryOneListedIsUsed) {
    using namespace queue_model_scan;
    const usage u = read_all();
    ASSERT_TRUE(u.problems.empty()) << problems_of(u);
    const auto meta = set_of(model::meta_fields);
    EXPECT_EQ(missing(u.meta, meta), "") << "meta fields the Lua uses that model.hpp does not list";
    EXPECT_EQ(missing(meta, u.meta), "") << "meta fields model.hpp lists that no script uses";
    // a scheduler hash holds its own fields and the job template (job fields)
    auto scheduler = set_of(model::scheduler_fields);
    EXPECT_EQ(missing(u.scheduler,
                      [&] {
                          auto all = scheduler;
                          for (std::string_view f : model::job_fields) all.emplace(f);
                          return all;
                      }()),
              "")
        << "scheduler fields the Lua uses that model.hpp does not list";
    EXPECT_EQ(missing(scheduler, u.scheduler), "") << "scheduler fields model.hpp lists that no script uses";
}

TEST(QueueModel, TheKeySuffixesTheLuaBuildsAreTheModels) {
    using namespace queue_model_scan;
    // every literal the scripts append to a queue's key base (BASE, base, queue_key('...')) or to
    // a job key (':logs'...), and every one the model lists is used
    auto known = set_of(model::key_suffixes);
    for (std::string_view s : model::base_suffixes) known.emplace(s);
    known.emplace(std::string(model::job) + ":");
    const std::set<std::string> job_suffixes =
        set_of(std::vector<std::string_view>{model::logs, model::results, model::ignored, model::group_limiter});
    std::set<std::string> used, used_job;
    for (const auto& s : all_scripts) {
        const auto t = tokenize(s.body);
        for (std::size_t i = 0; i + 2 < t.size(); ++i) {
            const bool after_base = t[i].kind == token::name && (t[i].text == "BASE" || t[i].text == "base") &&
                                    t[i + 1].text == ".." && t[i + 2].kind == token::str;
            const bool in_queue_key = t[i].text == "queue_key" && t[i + 1].text == "(" && t[i + 2].kind == token::str &&
                                      !t[i + 2].text.empty();
            if (after_base || in_queue_key) {
                used.insert(t[i + 2].text);
                EXPECT_TRUE(known.count(t[i + 2].text))
                    << s.name << ": key suffix '" << t[i + 2].text << "' is not in model.hpp";
            }
            if (t[i + 1].text == ".." && t[i + 2].kind == token::str &&
                std::regex_match(t[i + 2].text, std::regex(":[a-z-]+"))) {
                used_job.insert(t[i + 2].text);
                EXPECT_TRUE(job_suffixes.count(t[i + 2].text))
                    << s.name << ": job key suffix '" << t[i + 2].text << "' is not in model.hpp";
            }
        }
    }
    for (std::string_view s : model::base_suffixes) EXPECT_TRUE(used.count(std::string(s))) << s << " is never built";
    EXPECT_EQ(missing(job_suffixes, used_job), "") << "job key suffixes model.hpp lists that no script uses";
}

TEST(QueueModel, TheScanFindsAFieldTheModelDoesNotList) {
    using namespace queue_model_scan;
    // the scan itself: a made-up script that writes a job field no script has, in each way the
    // scripts write fields, is caught; a key it cannot place is reported
    usage u;
    read_script("made-up", R"lua(
local k = JOB .. ARGV[2]
redis.call('HSET', k, 'st', 'w', 'zz1', 1)
local h = {'name', 'n', 'zz2', now_ms()}
for j = 1, 2 do
  h[#h + 1] = 'zz3'
  h[#h + 1] = ARGV[j]
end
redis.call('HSET', JOB .. ARGV[3], unpack(h))
redis.call('HMGET', k, 'data', 'zz4')
redis.call('HGET', K_META, 'zz5')
redis.call('HGET', ARGV[9], 'st')
)lua",
                u);
    const usage real = read_all();  // what the helpers read with it use
    EXPECT_EQ(missing(u.job, real.job), "zz1, zz2, zz3, zz4");
    EXPECT_EQ(missing(u.meta, real.meta), "zz5");
    ASSERT_EQ(u.problems.size(), 1u) << problems_of(u);
    EXPECT_NE(u.problems[0].find("cannot place: ARGV [ 9 ]"), std::string::npos) << u.problems[0];
    // values are not fields: 'w' (a state letter) and 'n' were not taken for fields
    EXPECT_FALSE(u.job.count("w"));
    EXPECT_FALSE(u.job.count("n"));
}

TEST(QueueModel, EveryScriptInTheLuaHeadersIsRead) {
    // the list above against the definitions in queue/detail/lua/*.hpp, so a new script is read too
    namespace fs = std::filesystem;
    const fs::path dir =
        fs::path(__FILE__).parent_path() / ".." / ".." / "include" / "redkit" / "queue" / "detail" / "lua";
    ASSERT_TRUE(fs::is_directory(dir)) << dir;
    std::set<std::string> defined;
    const std::regex def(R"(inline constexpr std::string_view (\w+) = R"lua\()");
    for (const auto& e : fs::directory_iterator(dir)) {
        std::ifstream in(e.path());
        std::stringstream text;
        text << in.rdbuf();
        const std::string s = text.str();
        for (std::sregex_iterator m(s.begin(), s.end(), def), end; m != end; ++m) defined.insert((*m)[1]);
    }
    std::set<std::string> listed;
    for (const auto& s : queue_model_scan::all_scripts) listed.insert(s.name);
    EXPECT_EQ(queue_model_scan::missing(defined, listed), "") << "scripts the test does not read";
    EXPECT_EQ(queue_model_scan::missing(listed, defined), "") << "scripts the test lists that do not exist";
}

TEST(QueueModel, TheReaderSetsOneMemberPerFieldItReads) {
    // read_fields compares against the model's names (grouped by first letter): each field it
    // reads lands in its member, whatever the names are
    namespace jf = redkit::detail::queue_model::job_field;
    using record = redkit::detail::job_record;
    const std::pair<std::string_view, bool (*)(const record&)> read[] = {
        {jf::name, [](const record& r) { return r.name == "7"; }},
        {jf::data, [](const record& r) { return r.data == "7"; }},
        {jf::ts, [](const record& r) { return r.created == 7; }},
        {jf::st, [](const record& r) { return r.state == '7'; }},
        {jf::att, [](const record& r) { return r.attempts == 7; }},
        {jf::made, [](const record& r) { return r.attempts_made == 7; }},
        {jf::prio, [](const record& r) { return r.priority == 7; }},
        {jf::delay, [](const record& r) { return r.delay == 7; }},
        {jf::bo, [](const record& r) { return r.backoff_kind == 7; }},
        {jf::bd, [](const record& r) { return r.backoff_ms == 7; }},
        {jf::bj, [](const record& r) { return r.jitter_permille == 7; }},
        {jf::rcn, [](const record& r) { return r.keep_completed_count == 7; }},
        {jf::rca, [](const record& r) { return r.keep_completed_age == 7; }},
        {jf::rfn, [](const record& r) { return r.keep_failed_count == 7; }},
        {jf::rfa, [](const record& r) { return r.keep_failed_age == 7; }},
        {jf::pt, [](const record& r) { return r.processed == 7; }},
        {jf::ft, [](const record& r) { return r.finished == 7; }},
        {jf::rv, [](const record& r) { return r.return_value == "7"; }},
        {jf::fr, [](const record& r) { return r.failed_reason == "7"; }},
        {jf::tr, [](const record& r) { return r.trace == "7"; }},
        {jf::prog, [](const record& r) { return r.progress == "7"; }},
        {jf::stl, [](const record& r) { return r.stalls == 7; }},
        {jf::pid, [](const record& r) { return r.parent_id == "7"; }},
        {jf::pqn, [](const record& r) { return r.parent_queue == "7"; }},
        {jf::kids, [](const record& r) { return r.pending_children == 7; }},
        {jf::sch, [](const record& r) { return r.scheduler == "7"; }},
        {jf::tick, [](const record& r) { return r.tick == 7; }},
        {jf::de, [](const record& r) { return r.dedup_id == "7"; }},
    };
    for (const auto& [field, was_read] : read) {
        const std::string resp =
            "*2\r\n$" + std::to_string(field.size()) + "\r\n" + std::string(field) + "\r\n$1\r\n7\r\n";
        const auto fields = redkit::detail::parse_resp(resp);
        const redkit::detail::origin from{"HGETALL", "job"};
        const redkit::reply h(redkit::detail::view_access::of(fields.get(), from));
        record r;
        redkit::detail::read_fields(h, r);
        EXPECT_TRUE(was_read(r)) << field;
    }
}
