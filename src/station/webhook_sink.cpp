// One request at a time, in the journal's order: a consumer sees results in sequence, and the
// position is simply the last one acknowledged.
#include "station/webhook_sink.h"

#include <algorithm>

#include <curl/curl.h>

#include <patchvec/error.h>
#include <patchvec/log.h>
#include <patchvec/text.h>

#include "util/sha256.h"

namespace pv::station {
namespace {

constexpr long kMaxAnswerBytes = 64 << 10;  // what is kept of an answer, for the log

// The URL without its query (which may carry a token), for logs and the status.
std::string describe(const std::string& url) {
  return "webhook " + printable(url.substr(0, url.find('?')), 200);
}

class WebhookPoster final : public JournalSink {
 public:
  WebhookPoster(const WebhookSink& sink, const Journal& journal,
                const std::filesystem::path& position_file)
      : JournalSink(journal, position_file, describe(sink.url)), sink_(sink) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    start();
  }
  ~WebhookPoster() override { stop_thread(); }

 private:
  void deliver() override {
    auto backoff = std::chrono::seconds(1);
    bool failing = false;
    while (!stopping() && !(failing && stop_requested())) {
      const std::uint64_t seq = delivered() + 1;
      if (seq > journal_.size()) {
        wait(1000);
        continue;
      }
      const std::string body = journal_.read(seq);
      std::string why;
      if (post(body, why)) {
        acknowledge(seq);
        connected_ = true;
        failing = false;
        backoff = std::chrono::seconds(1);
        continue;
      }
      if (!failing || connected_) {
        log::warn(name_ + ": " + why + "; trying again (results wait in the journal)");
        if (connected_) ++reconnects_;
      }
      connected_ = false;
      failing = true;
      // The backoff is not cut short by new records, only by a stop.
      const auto until = std::chrono::steady_clock::now() + backoff;
      while (!stop_requested() && std::chrono::steady_clock::now() < until) {
        wait(static_cast<int>(std::max<std::int64_t>(
            std::chrono::duration_cast<std::chrono::milliseconds>(until -
                                                                  std::chrono::steady_clock::now())
                .count(),
            1)));
      }
      backoff = std::min(backoff * 2, std::chrono::seconds(30));
    }
  }

  // POSTs `body`; true for a 2xx answer, else `why` says what happened.
  bool post(const std::string& body, std::string& why) const {
    std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), curl_easy_cleanup);
    if (!curl) {
      why = "cannot start a request";
      return false;
    }
    const auto record = nlohmann::json::parse(body, nullptr, false);
    const std::string key =
        record.is_object() && record.contains("key") && record["key"].is_string()
            ? record["key"].get<std::string>()
            : "";
    curl_slist* headers = nullptr;
    headers = curl_slist_append(headers, "Content-Type: application/json");
    headers = curl_slist_append(headers, ("Idempotency-Key: " + key).c_str());
    if (!sink_.secret.empty()) {
      headers = curl_slist_append(
          headers, ("X-PatchVec-Signature: " + webhook_signature(sink_.secret, body)).c_str());
    }
    std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> header_list(headers,
                                                                            curl_slist_free_all);
    std::string answer;
    curl_easy_setopt(curl.get(), CURLOPT_URL, sink_.url.c_str());
    curl_easy_setopt(curl.get(), CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl.get(), CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl.get(), CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl.get(), CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(curl.get(), CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
    curl_easy_setopt(curl.get(), CURLOPT_TIMEOUT, static_cast<long>(sink_.timeout_seconds));
    curl_easy_setopt(curl.get(), CURLOPT_CONNECTTIMEOUT, static_cast<long>(sink_.timeout_seconds));
    curl_easy_setopt(curl.get(), CURLOPT_USERAGENT, "patchvec-station");
    curl_easy_setopt(
        curl.get(), CURLOPT_WRITEFUNCTION, +[](char* data, size_t, size_t n, void* out) -> size_t {
          auto* text = static_cast<std::string*>(out);
          if (text->size() < static_cast<size_t>(kMaxAnswerBytes)) {
            text->append(data, std::min(n, static_cast<size_t>(kMaxAnswerBytes) - text->size()));
          }
          return n;
        });
    curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, &answer);
    const CURLcode rc = curl_easy_perform(curl.get());
    if (rc != CURLE_OK) {
      why = curl_easy_strerror(rc);
      return false;
    }
    long status = 0;
    curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &status);
    if (status >= 200 && status < 300) return true;
    why = "answered " + std::to_string(status) + " " + printable(answer, 200);
    return false;
  }

  const WebhookSink sink_;
};

}  // namespace

std::string webhook_signature(const std::string& secret, const std::string& body) {
  return "sha256=" + hmac_sha256_hex(secret, body);
}

std::unique_ptr<Sink> start_webhook_sink(const WebhookSink& sink, const Journal& journal,
                                         const std::filesystem::path& position_file) {
  return std::make_unique<WebhookPoster>(sink, journal, position_file);
}

}  // namespace pv::station
