package pathscan

import "testing"

func TestSlotsBound(t *testing.T) {
	var s Slots
	if !s.acquire() || s.limit < 64 {
		t.Fatalf("derived limit %d", s.limit)
	}
	s.release()
	s.limit = 2
	if !s.acquire() || !s.acquire() {
		t.Fatal("two slots of two")
	}
	if s.acquire() {
		t.Fatal("a third slot of two")
	}
	s.release()
	if !s.acquire() {
		t.Fatal("a released slot is not free again")
	}
}
