// Running the patchvec binary as a user would, capturing its output and exit code.
#pragma once

#include <array>
#include <cstdio>
#include <string>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

namespace pv {

struct CommandResult {
  int exit_code;
  std::string output;  // stdout and stderr
};

// Runs `binary` with `arguments` (shell words). With `merge_stderr` false, stderr is discarded and
// `output` is stdout alone (for JSON).
inline CommandResult run_program(const std::string& binary, const std::string& arguments,
                                 bool merge_stderr = true) {
  const std::string command = binary + " " + arguments + (merge_stderr ? " 2>&1" : " 2>/dev/null");
  FILE* pipe = ::popen(command.c_str(), "r");
  CommandResult run{-1, ""};
  std::array<char, 4096> buffer{};
  while (const std::size_t n = std::fread(buffer.data(), 1, buffer.size(), pipe))
    run.output.append(buffer.data(), n);
  const int status = ::pclose(pipe);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

inline CommandResult patchvec(const std::string& arguments, bool merge_stderr = true) {
  return run_program(PATCHVEC_BINARY, arguments, merge_stderr);
}

// patchvec with `arguments` (shell words, through sh), and the peak resident memory of that run
// alone (wait4's rusage of the shell, whose only child it is), in KiB.
struct MeasuredRun {
  int exit_code = -1;
  long peak_kib = 0;
};
inline MeasuredRun patchvec_measured(const std::string& arguments) {
  const std::string command = std::string(PATCHVEC_BINARY) + " " + arguments + " >/dev/null 2>&1";
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  MeasuredRun run;
  int status = 0;
  rusage usage{};
  if (pid > 0 && ::wait4(pid, &status, 0, &usage) == pid) {
    run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    run.peak_kib = usage.ru_maxrss;
  }
  return run;
}

}  // namespace pv
