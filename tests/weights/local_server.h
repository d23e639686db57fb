// An HTTP server on 127.0.0.1 for download tests: files by name, a 404 for anything else, and a
// route that breaks its transfer half-way. Never reaches beyond this machine.
#pragma once

#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include <httplib.h>

namespace pv::testing {

class LocalServer {
 public:
  LocalServer() {
    server_.Get(R"(/files/([^/]+))",
                [this](const httplib::Request& request, httplib::Response& response) {
                  ++requests_;
                  const std::lock_guard lock(mutex_);
                  const auto found = files_.find(request.matches[1].str());
                  if (found == files_.end()) {
                    response.status = 404;
                    return;
                  }
                  response.set_content(found->second, "application/octet-stream");
                });
    // Announces the whole file, sends half of it, then drops the connection.
    server_.Get(R"(/truncated/([^/]+))",
                [this](const httplib::Request& request, httplib::Response& response) {
                  ++requests_;
                  std::string body;
                  {
                    const std::lock_guard lock(mutex_);
                    const auto found = files_.find(request.matches[1].str());
                    if (found == files_.end()) {
                      response.status = 404;
                      return;
                    }
                    body = found->second;
                  }
                  response.set_content_provider(
                      body.size(), "application/octet-stream",
                      [body](std::size_t offset, std::size_t, httplib::DataSink& sink) {
                        if (offset >= body.size() / 2) return false;
                        sink.write(body.data() + offset, body.size() / 2 - offset);
                        return true;
                      });
                });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  LocalServer(const LocalServer&) = delete;
  LocalServer& operator=(const LocalServer&) = delete;
  ~LocalServer() { stop(); }

  void add(const std::string& name, std::string bytes) {
    const std::lock_guard lock(mutex_);
    files_[name] = std::move(bytes);
  }
  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + "/" + path;
  }
  int requests() const { return requests_; }
  void stop() {
    if (!thread_.joinable()) return;
    server_.stop();
    thread_.join();
  }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mutex_;
  std::map<std::string, std::string> files_;
  std::atomic<int> requests_{0};
};

}  // namespace pv::testing
