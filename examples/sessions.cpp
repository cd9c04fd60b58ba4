// SPDX-License-Identifier: MIT
// Sessions: log in on two devices, serve a request, rotate the token on a privilege change, show
// the "your devices" page, sign one device out, then log out everywhere.
#include <redkit/redkit.hpp>

#include <chrono>
#include <iostream>
#include <string>

int main() try {
    using namespace std::chrono_literals;
    redkit::session_store<> sessions(redkit::default_client(),
                                     redkit::session_options{20min, 8h, redkit::key_space("example")});
    const std::string user = "ada@example.com";

    // Login: the token goes into a Secure, HttpOnly, SameSite cookie. Redis never sees it.
    const std::string laptop = sessions.create(user, {{"device", "Firefox on Linux"}, {"role", "customer"}});
    const std::string phone = sessions.create(user, {{"device", "Safari on iPhone"}, {"role", "customer"}});
    std::cout << "login on 2 devices: tokens of " << laptop.size() << " and " << phone.size()
              << " characters (never logged, never stored)\n";

    // A request: look the cookie up (this slides the idle timeout).
    if (auto s = sessions.get(laptop)) {
        std::cout << "request: hello " << s->user_id << " on " << s->data.at("device") << " (session "
                  << s->id.substr(0, 6) << "..., version " << s->version << ")\n";
    }
    std::cout << "forged cookie: " << (sessions.get(std::string(44, 'A')) ? "accepted?!" : "no session") << '\n';

    // Privilege change: new token, old one dead at once; data changed by compare-and-set.
    const std::string admin = sessions.rotate(laptop).value();
    const auto promoted = sessions.modify(admin, [](auto& data) { data["role"] = "admin"; });
    std::cout << "rotated: old token " << (sessions.get(laptop) ? "still works?!" : "rejected")
              << ", new token role=" << promoted.current->data.at("role") << '\n';

    // The "your devices" page: no tokens in it, an id per session to sign one out.
    for (const auto& d : sessions.list(user)) std::cout << "device: " << d.data.at("device") << '\n';
    const std::string phone_id = sessions.peek(phone)->id;
    std::cout << "sign out phone: " << (sessions.revoke_by_id(user, phone_id) ? "done" : "not found")
              << ", devices left: " << sessions.list(user).size() << '\n';

    // Password changed: log out everywhere.
    (void)sessions.create(user, {{"device", "Chrome on Windows"}});
    std::cout << "logout everywhere: " << sessions.revoke_all(user) << " sessions revoked, admin token "
              << (sessions.get(admin) ? "still works?!" : "rejected") << '\n';
    return 0;
} catch (const std::exception& e) {
    std::cerr << "sessions example failed: " << e.what() << '\n';
    return 1;
}
