// SPDX-License-Identifier: MIT
// Cache workloads, each on one connection, next to hand-written raw hiredis + nlohmann code that
// does the same work:
//   cache_hit        redkit: cache::get_or_set<product> on a stored key (one GET, the XFetch check,
//                    the JSON decode of the ~1 KB fixtures/product.json into a struct).
//                    baseline: GET, nlohmann::json::parse of the reply, get<product>().
//   cache_miss_fill  redkit: cache::get_or_set<product> on a key never seen (GET -> nil, the loader
//                    returns the struct, SET key value PX ttl).
//                    baseline: GET -> nil, the same loader, dump() to JSON, SET key value PX ttl.
//                    Every operation uses a fresh key; the keys of the previous repetition are
//                    deleted before each one, untimed.
#include <redkit/cache.hpp>

#include "bench.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace redkit_bench {
namespace {

struct product {
    std::string id, sku, name, slug, description, brand, category;
    double price = 0, compare_at_price = 0;
    std::string currency;
    double rating = 0;
    long long review_count = 0, stock = 0;
    bool in_stock = false, featured = false;
    long long weight_grams = 0;
    std::vector<std::string> tags;
    std::string image_url, created_at, updated_at;
};

void to_json(nlohmann::json& j, const product& p) {
    j = nlohmann::json{{"id", p.id},
                       {"sku", p.sku},
                       {"name", p.name},
                       {"slug", p.slug},
                       {"description", p.description},
                       {"brand", p.brand},
                       {"category", p.category},
                       {"price", p.price},
                       {"compareAtPrice", p.compare_at_price},
                       {"currency", p.currency},
                       {"rating", p.rating},
                       {"reviewCount", p.review_count},
                       {"stock", p.stock},
                       {"inStock", p.in_stock},
                       {"featured", p.featured},
                       {"weightGrams", p.weight_grams},
                       {"tags", p.tags},
                       {"imageUrl", p.image_url},
                       {"createdAt", p.created_at},
                       {"updatedAt", p.updated_at}};
}

void from_json(const nlohmann::json& j, product& p) {
    j.at("id").get_to(p.id);
    j.at("sku").get_to(p.sku);
    j.at("name").get_to(p.name);
    j.at("slug").get_to(p.slug);
    j.at("description").get_to(p.description);
    j.at("brand").get_to(p.brand);
    j.at("category").get_to(p.category);
    j.at("price").get_to(p.price);
    j.at("compareAtPrice").get_to(p.compare_at_price);
    j.at("currency").get_to(p.currency);
    j.at("rating").get_to(p.rating);
    j.at("reviewCount").get_to(p.review_count);
    j.at("stock").get_to(p.stock);
    j.at("inStock").get_to(p.in_stock);
    j.at("featured").get_to(p.featured);
    j.at("weightGrams").get_to(p.weight_grams);
    j.at("tags").get_to(p.tags);
    j.at("imageUrl").get_to(p.image_url);
    j.at("createdAt").get_to(p.created_at);
    j.at("updatedAt").get_to(p.updated_at);
}

// The same struct, its fields named once through redkit::json_fields: decoded in one pass
// (redkit::read_json) instead of through nlohmann's DOM.
struct fast_product : product {};

}  // namespace
}  // namespace redkit_bench

template <>
struct redkit::json_fields<redkit_bench::fast_product> {
    using p = redkit_bench::product;
    static constexpr auto value = redkit::fields(
        redkit::field("id", &p::id), redkit::field("sku", &p::sku), redkit::field("name", &p::name),
        redkit::field("slug", &p::slug), redkit::field("description", &p::description),
        redkit::field("brand", &p::brand), redkit::field("category", &p::category), redkit::field("price", &p::price),
        redkit::field("compareAtPrice", &p::compare_at_price), redkit::field("currency", &p::currency),
        redkit::field("rating", &p::rating), redkit::field("reviewCount", &p::review_count),
        redkit::field("stock", &p::stock), redkit::field("inStock", &p::in_stock),
        redkit::field("featured", &p::featured), redkit::field("weightGrams", &p::weight_grams),
        redkit::field("tags", &p::tags), redkit::field("imageUrl", &p::image_url),
        redkit::field("createdAt", &p::created_at), redkit::field("updatedAt", &p::updated_at));
};

namespace redkit_bench {
namespace {

struct cache_bench_state {
    std::unique_ptr<redkit::client> one;  // a pool of one connection
    std::unique_ptr<redkit::cache> cache;
    std::unique_ptr<redkit::cache> near;  // the same, with a near cache
    std::string document;                 // the fixture's bytes
    redisContext* raw = nullptr;
    product fixture;
    long long generation = 0;  // miss keys: bench:cache:miss:<generation>:<i>
    long long written = 0;     // keys the last miss run wrote
    ~cache_bench_state() {
        if (raw) redisFree(raw);
    }
};

std::string miss_key(long long generation, long long i) {
    return "bench:cache:miss:" + std::to_string(generation) + ":" + std::to_string(i);
}

// Deletes the previous repetition's miss keys, pipelined (untimed).
void drop_miss_keys(cache_bench_state& st) {
    constexpr long long batch = 500;
    for (long long from = 0; from < st.written; from += batch) {
        const long long to = std::min(st.written, from + batch);
        for (long long i = from; i < to; ++i) {
            const std::string k = miss_key(st.generation, i);
            const char* av[] = {"UNLINK", k.c_str()};
            const size_t lens[] = {6, k.size()};
            redisAppendCommandArgv(st.raw, 2, av, lens);
        }
        for (long long i = from; i < to; ++i) {
            void* r = nullptr;
            if (redisGetReply(st.raw, &r) != REDIS_OK) throw std::runtime_error("raw UNLINK failed");
            freeReplyObject(r);
        }
    }
    st.written = 0;
    ++st.generation;
}

void add_cache(context& ctx, std::vector<workload>& out) {
    auto st = std::make_shared<cache_bench_state>();
    auto one = ctx.base;
    one.pool_size = 1;
    st->one = std::make_unique<redkit::client>(one);
    st->cache = std::make_unique<redkit::cache>(*st->one);  // default options: XFetch, jitter, metadata
    st->raw = raw_connect(ctx.base);

    st->fixture = nlohmann::json::parse(read_file(ctx.fixtures_dir + "/product.json")).get<product>();

    // Both sides decode the same document: what a service writes with nlohmann::json(p).dump()
    // (the fixture's 1008 bytes, keys in nlohmann's order), the cache's copy followed by its
    // 50-byte metadata trailer.
    const std::string raw_key = "bench:cache:hit:raw";
    const std::string key = "bench:cache:hit";
    raw_set(st->raw, raw_key, nlohmann::json(st->fixture).dump());
    // Stored through get_or_set, so the entry carries a recompute time and the hit path runs the
    // XFetch check (the baseline reads the plain fixture bytes).
    static_cast<void>(st->cache->get_or_set<product>(
        key, [st] { return st->fixture; }, std::chrono::hours(1)));

    out.push_back({"cache_hit",
                   2000 * ctx.scale,
                   {{"hiredis",
                     [st, raw_key](long long n) {
                         for (long long i = 0; i < n; ++i) {
                             const char* av[] = {"GET", raw_key.c_str()};
                             const size_t lens[] = {3, raw_key.size()};
                             auto* r = static_cast<redisReply*>(redisCommandArgv(st->raw, 2, av, lens));
                             if (!r) throw std::runtime_error("raw GET failed");
                             if (r->type != REDIS_REPLY_STRING) {
                                 freeReplyObject(r);
                                 throw std::runtime_error("raw GET: not a string");
                             }
                             product p;
                             try {
                                 p = nlohmann::json::parse(r->str, r->str + r->len).get<product>();
                             } catch (...) {
                                 freeReplyObject(r);
                                 throw;
                             }
                             freeReplyObject(r);
                             sink = sink + p.description.size();
                         }
                     }},
                    {"redkit", [st, key](long long n) {
                         for (long long i = 0; i < n; ++i) {
                             const product p = st->cache->get_or_set<product>(
                                 key, [st] { return st->fixture; }, std::chrono::hours(1));
                             sink = sink + p.description.size();
                         }
                     }}}});

    // The decode alone, of the fixture's bytes: nlohmann's DOM and json_fields' one pass.
    st->document = read_file(ctx.fixtures_dir + "/product.json");
    out.push_back({"decode_1kb",
                   20000 * ctx.scale,
                   {{"nlohmann_dom",
                     [st](long long n) {
                         for (long long i = 0; i < n; ++i) {
                             const product p = nlohmann::json::parse(st->document).get<product>();
                             sink = sink + p.description.size();
                         }
                     }},
                    {"json_fields", [st](long long n) {
                         for (long long i = 0; i < n; ++i) {
                             const fast_product p = redkit::decode<fast_product>(st->document);
                             sink = sink + p.description.size();
                         }
                     }}}});

    // A remote hit as today (the DOM) and with the one-pass decode.
    const auto fast_loader = [st] {
        fast_product p;
        static_cast<product&>(p) = st->fixture;
        return p;
    };
    out.push_back({"cache_hit_decode",
                   2000 * ctx.scale,
                   {{"redkit_dom",
                     [st, key](long long n) {
                         for (long long i = 0; i < n; ++i) {
                             const product p = st->cache->get_or_set<product>(
                                 key, [st] { return st->fixture; }, std::chrono::hours(1));
                             sink = sink + p.description.size();
                         }
                     }},
                    {"redkit_fields", [st, key, fast_loader](long long n) {
                         for (long long i = 0; i < n; ++i) {
                             const fast_product p =
                                 st->cache->get_or_set<fast_product>(key, fast_loader, std::chrono::hours(1));
                             sink = sink + p.description.size();
                         }
                     }}}});

    // A near hit (process memory, nothing decoded) against a remote hit, both with json_fields.
    redkit::cache_options near_options;
    near_options.near.enabled = true;
    // its own prefix: a near cache without one tracks every key of the server, and its tracker
    // thread would read an invalidation for every write of the later workloads (the queue's, the
    // rate limiter's...), counted in their CPU per operation
    near_options.keys = redkit::key_space("bench-near");
    st->near = std::make_unique<redkit::cache>(*st->one, near_options);
    for (int i = 0; i < 500 && !st->near->near_stats().connected; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (!st->near->near_stats().connected) throw std::runtime_error("near cache: no invalidation connection");
    out.push_back({"near_hit",
                   2000 * ctx.scale,
                   {{"redkit_remote",
                     [st, key, fast_loader](long long n) {
                         for (long long i = 0; i < n; ++i) {
                             const fast_product p =
                                 st->cache->get_or_set<fast_product>(key, fast_loader, std::chrono::hours(1));
                             sink = sink + p.description.size();
                         }
                     }},
                    {"redkit_near",
                     [st, key, fast_loader](long long n) {
                         for (long long i = 0; i < n; ++i) {
                             const fast_product p =
                                 st->near->get_or_set<fast_product>(key, fast_loader, std::chrono::hours(1));
                             sink = sink + p.description.size();
                         }
                     },
                     100}}});

    const std::chrono::milliseconds ttl(60'000);
    out.push_back({"cache_miss_fill",
                   1000 * ctx.scale,
                   {{"hiredis",
                     [st, ttl](long long n) {
                         const std::string px = std::to_string(ttl.count());
                         for (long long i = 0; i < n; ++i) {
                             const std::string k = miss_key(st->generation, i);
                             {
                                 const char* av[] = {"GET", k.c_str()};
                                 const size_t lens[] = {3, k.size()};
                                 auto* r = static_cast<redisReply*>(redisCommandArgv(st->raw, 2, av, lens));
                                 if (!r) throw std::runtime_error("raw GET failed");
                                 const bool nil = r->type == REDIS_REPLY_NIL;
                                 freeReplyObject(r);
                                 if (!nil) throw std::runtime_error("raw GET: expected a miss");
                             }
                             const product p = [&] { return st->fixture; }();  // the loader
                             const std::string value = nlohmann::json(p).dump();
                             const char* av[] = {"SET", k.c_str(), value.c_str(), "PX", px.c_str()};
                             const size_t lens[] = {3, k.size(), value.size(), 2, px.size()};
                             auto* r = static_cast<redisReply*>(redisCommandArgv(st->raw, 5, av, lens));
                             if (!r) throw std::runtime_error("raw SET failed");
                             const bool ok = r->type == REDIS_REPLY_STATUS;
                             freeReplyObject(r);
                             if (!ok) throw std::runtime_error("raw SET: unexpected reply");
                             sink = sink + value.size();
                         }
                         st->written = n;
                     }},
                    {"redkit",
                     [st, ttl](long long n) {
                         for (long long i = 0; i < n; ++i) {
                             const product p = st->cache->get_or_set<product>(
                                 miss_key(st->generation, i), [st] { return st->fixture; }, ttl);
                             sink = sink + p.description.size();
                         }
                         st->written = n;
                     }}},
                   [st] { drop_miss_keys(*st); }});
}

const registrar reg(10, "cache", &add_cache);

}  // namespace
}  // namespace redkit_bench
