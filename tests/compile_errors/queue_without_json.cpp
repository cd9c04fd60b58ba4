// SPDX-License-Identifier: MIT
// Must not compile: a queue of a payload type without JSON support.
#include <redkit/redkit.hpp>

struct mail {
    int id = 0;
};

int main() {
    redkit::queue<mail> mails(redkit::default_client(), "mail");
    const redkit::added_job added = mails.add("send", mail{1});
    return added.created ? 0 : 1;
}
