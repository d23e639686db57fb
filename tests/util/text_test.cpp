// Text from outside: what counts as clean, and how the rest is printed (terminals and logs).
#include <iostream>
#include <sstream>

#include <gtest/gtest.h>

#include <patchvec/log.h>
#include <patchvec/text.h>

namespace pv {
namespace {

TEST(Text, CleanIsStrictUtf8WithoutControls) {
  for (const char* clean :
       {"", "crack", "Kratzer ä", "日本", "emoji \xf0\x9f\x98\x80", "tab-less"}) {
    EXPECT_EQ(text_problem(clean), "") << clean;
  }
  EXPECT_EQ(text_problem("a\nb"), "contains control characters");
  EXPECT_EQ(text_problem(std::string("a\0b", 3)), "contains control characters");
  EXPECT_EQ(text_problem("\x1b[31mred"), "contains control characters");
  EXPECT_EQ(text_problem("del\x7f"), "contains control characters");
  EXPECT_EQ(text_problem("c1 \xc2\x85"), "contains control characters");  // NEL
  for (const char* bad : {"\xff", "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                          "cut \xe6\x97", "\x80"}) {
    EXPECT_EQ(text_problem(bad), "is not valid UTF-8") << bad;
  }
}

TEST(Text, PrintableIsOneSafeLine) {
  EXPECT_EQ(printable("plain äö"), "plain äö");
  EXPECT_EQ(printable("x\npatchvec: warning: FORGED\xff"), "x\\x0apatchvec: warning: FORGED\\xff");
  EXPECT_EQ(printable("\x1b[2J"), "\\x1b[2J");
  EXPECT_EQ(printable(std::string(1000, 'a'), 10), "aaaaaaaaaa...");
  EXPECT_EQ(printable("ääää", 5), "ää...");  // whole characters only
  EXPECT_EQ(printable("ab", 2), "ab");
}

TEST(Text, LogLinesCannotBeForged) {
  std::ostringstream captured;
  std::streambuf* const original = std::cerr.rdbuf(captured.rdbuf());
  log::warn("no such endpoint: /x\npatchvec: warning: FORGED admin login ok\xff");
  log::set_quiet(false);
  log::info("name\r\ninjected");
  std::cerr.rdbuf(original);
  const std::string text = captured.str();
  EXPECT_EQ(text,
            "patchvec: warning: no such endpoint: /x\\x0apatchvec: warning: FORGED admin login "
            "ok\\xff\nname\\x0d\\x0ainjected\n");
}

}  // namespace
}  // namespace pv
