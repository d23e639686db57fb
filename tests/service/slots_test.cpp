// Inspection slots are handed out in the order requests asked for them.
#include "service/slots.h"

#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace pv::service {
namespace {

using namespace std::chrono_literals;

TEST(FairSlots, WaitersAreServedInTheOrderTheyCame) {
  FairSlots slots(1);
  ASSERT_TRUE(slots.acquire_for(0ms));
  std::mutex lock;
  std::vector<int> order;
  std::vector<std::thread> waiters;
  for (int i = 0; i < 5; ++i) {
    waiters.emplace_back([&, i] {
      ASSERT_TRUE(slots.acquire_for(10s));
      {
        const std::lock_guard guard(lock);
        order.push_back(i);
      }
      std::this_thread::sleep_for(5ms);
      slots.release();
    });
    std::this_thread::sleep_for(30ms);  // each waiter in line before the next comes
  }
  slots.release();
  for (auto& t : waiters) t.join();
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
}

TEST(FairSlots, AWaiterThatGivesUpLeavesTheLine) {
  FairSlots slots(2);
  ASSERT_TRUE(slots.acquire_for(0ms));
  ASSERT_TRUE(slots.acquire_for(0ms));
  EXPECT_FALSE(slots.acquire_for(20ms));  // both taken
  slots.release();
  EXPECT_TRUE(slots.acquire_for(0ms));  // the one that gave up does not hold it
  EXPECT_FALSE(slots.acquire_for(0ms));
  slots.release();
  slots.release();
  EXPECT_TRUE(slots.acquire_for(0ms));
  EXPECT_TRUE(slots.acquire_for(0ms));
}

}  // namespace
}  // namespace pv::service
