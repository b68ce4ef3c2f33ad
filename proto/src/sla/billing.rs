//! Who pays for a visit: the asset's warranty, the customer's contract and the time of
//! service decide, per charge (labour, travel, parts), whether it is free or billable.

use serde::{Deserialize, Serialize};

use super::calendar::Calendar;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkType {
    Repair,
    Inspection,
    Installation,
    Maintenance,
}

impl WorkType {
    pub fn parse(s: &str) -> Option<WorkType> {
        Some(match s {
            "repair" => WorkType::Repair,
            "inspection" => WorkType::Inspection,
            "installation" => WorkType::Installation,
            "maintenance" => WorkType::Maintenance,
            _ => return None,
        })
    }
}

/// What a service contract includes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Included {
    pub labour: bool,
    pub travel: bool,
    pub parts: bool,
    /// Visits outside the contract's hours are included too (otherwise labour and travel
    /// outside them are billed).
    pub after_hours: bool,
}

/// The customer's contract as it bears on one visit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractCover {
    pub valid_from: u64,
    /// Exclusive.
    pub valid_until: u64,
    /// The contract lists this order's asset or site.
    pub covers: bool,
    pub included: Included,
    pub calendar: Calendar,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The asset's warranty covers a repair.
    Warranty,
    /// The contract includes it.
    Contract,
    /// The contract covers the asset but not this charge.
    NotIncluded,
    /// Outside the contract's hours, which it does not include.
    AfterHours,
    /// No warranty or contract covers the visit.
    NotCovered,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Charge {
    pub billable: bool,
    pub reason: Reason,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Billing {
    pub labour: Charge,
    pub travel: Charge,
    pub parts: Charge,
}

impl Billing {
    pub fn is_free(&self) -> bool {
        !(self.labour.billable || self.travel.billable || self.parts.billable)
    }
}

const fn free(reason: Reason) -> Charge {
    Charge {
        billable: false,
        reason,
    }
}

const fn billed(reason: Reason) -> Charge {
    Charge {
        billable: true,
        reason,
    }
}

/// Billing for `work` done at `service_at` (event time) on an asset whose warranty ends at
/// `warranty_end` (exclusive), under `contract` if the customer has one.
pub fn billing(
    work: WorkType,
    service_at: u64,
    warranty_end: Option<u64>,
    contract: Option<&ContractCover>,
) -> Billing {
    // A warranty answers for the product's faults, not for routine visits.
    if work == WorkType::Repair && warranty_end.is_some_and(|end| service_at < end) {
        return Billing {
            labour: free(Reason::Warranty),
            travel: free(Reason::Warranty),
            parts: free(Reason::Warranty),
        };
    }
    let Some(c) =
        contract.filter(|c| c.covers && (c.valid_from..c.valid_until).contains(&service_at))
    else {
        return Billing {
            labour: billed(Reason::NotCovered),
            travel: billed(Reason::NotCovered),
            parts: billed(Reason::NotCovered),
        };
    };
    let in_hours = !c
        .calendar
        .open_between(service_at, service_at + 1)
        .is_empty();
    let time_charge = |included: bool| match (included, in_hours || c.included.after_hours) {
        (true, true) => free(Reason::Contract),
        (true, false) => billed(Reason::AfterHours),
        (false, _) => billed(Reason::NotIncluded),
    };
    Billing {
        labour: time_charge(c.included.labour),
        travel: time_charge(c.included.travel),
        parts: if c.included.parts {
            free(Reason::Contract)
        } else {
            billed(Reason::NotIncluded)
        },
    }
}
