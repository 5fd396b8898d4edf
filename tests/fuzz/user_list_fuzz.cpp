// User-list answers (segmentations, tags): parse_user_list returns the answer or an
// error, never throws, never echoes a link, and keeps every link of a done answer.

#include <cstddef>
#include <cstdint>

#include "api/chart.hpp"
#include "fuzz_check.hpp"

namespace json = boost::json;
using gio::api::UserListStatus;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body = gio::fuzz::as_text(data, size);
  const json::value document = gio::fuzz::parse_or_null(body);
  const json::object* object = document.if_object();
  const json::value* status = object != nullptr ? object->if_contains("status") : nullptr;
  const json::value* links = object != nullptr ? object->if_contains("downloadLinks") : nullptr;

  const auto answer = gio::api::parse_user_list(body);
  if (answer) {
    GIO_FUZZ_CHECK(status != nullptr && status->is_string(), "an answer without a status");
    const std::string_view text = status->get_string();
    switch (answer->status) {
      case UserListStatus::doing:
        GIO_FUZZ_CHECK(text == "doing" && answer->links.empty(), "doing differs");
        break;
      case UserListStatus::failed:
        GIO_FUZZ_CHECK(text == "failed" && answer->links.empty(), "failed differs");
        break;
      case UserListStatus::done: {
        GIO_FUZZ_CHECK(text == "done", "done differs");
        GIO_FUZZ_CHECK(links != nullptr && links->is_array(), "done without links");
        const json::array& list = links->get_array();
        GIO_FUZZ_CHECK(list.size() == answer->links.size(), "links lost");
        for (std::size_t i = 0; i < list.size(); ++i) {
          GIO_FUZZ_CHECK(list[i].is_string() && list[i].get_string() == answer->links[i],
                         "a link changed");
          GIO_FUZZ_CHECK(!answer->links[i].empty(), "an empty link");
        }
        break;
      }
    }
    return 0;
  }
  const std::string& error = answer.error();
  GIO_FUZZ_CHECK(!error.empty(), "an empty error");
  // The error must not depend on the links (it would quote them).
  if (links != nullptr) {
    json::value other = document;
    int next = 0;
    gio::fuzz::replace_strings(other.get_object()["downloadLinks"], next);
    const auto again = gio::api::parse_user_list(json::serialize(other));
    GIO_FUZZ_CHECK(!again && again.error() == error, "an error depends on the links: " + error);
  }
  return 0;
}
