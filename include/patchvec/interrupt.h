// Stopping long work from outside the library: a program that embeds PatchVec (the Python module,
// for Ctrl-C) installs a check, and the long loops (embedding, BatchNorm calibration, coreset
// selection, evaluation pictures) ask it between batches. Thread-safe.
#pragma once

#include <functional>

#include <patchvec/error.h>

namespace pv {

// The work was stopped by the installed check. Nothing half-done is left behind: files are
// written atomically and a model under construction is discarded.
class Interrupted : public Error {
 public:
  Interrupted() : Error("interrupted") {}
};

// `check` returns true when the work under way should stop; it is called from the thread that
// started the work, between batches (tens to hundreds of milliseconds apart), and must be cheap.
// Empty (the default): never stop.
void set_interrupt_check(std::function<bool()> check);

// Throws Interrupted when the installed check says so.
void check_interrupt();

}  // namespace pv
