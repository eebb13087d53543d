//! The sessions to drive again next turn: those that stopped at their share of this one with
//! more to read. Each is listed once however often it was driven, and those that had nothing
//! handled (their host's share was gone before their turn) come first next time, so one
//! connection of a host cannot take the host's share every turn while another waits.

use std::collections::HashSet;

#[derive(Default)]
pub(super) struct Revisits {
    starved: Vec<usize>,
    served: Vec<usize>,
    listed: HashSet<usize>,
}

impl Revisits {
    /// Lists `slot` for next turn; `starved` when it had nothing handled in this one.
    pub(super) fn push(&mut self, slot: usize, starved: bool) {
        if self.listed.insert(slot) {
            if starved {
                self.starved.push(slot);
            } else {
                self.served.push(slot);
            }
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.listed.is_empty()
    }

    /// The slots listed, the starved first, leaving the list empty for this turn's.
    pub(super) fn take(&mut self) -> Vec<usize> {
        self.listed.clear();
        let mut slots = std::mem::take(&mut self.starved);
        slots.append(&mut self.served);
        slots
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A slot driven three times in a turn is driven once next turn, and one that had nothing
    /// handled goes before those that had their share.
    #[test]
    fn each_slot_comes_back_once_and_the_starved_first() {
        let mut revisits = Revisits::default();
        revisits.push(1, false);
        revisits.push(2, true);
        revisits.push(1, false);
        revisits.push(3, false);
        revisits.push(2, true);
        assert_eq!(revisits.take(), [2, 1, 3]);
        assert!(revisits.is_empty());
        revisits.push(1, false);
        assert_eq!(revisits.take(), [1]);
    }
}
