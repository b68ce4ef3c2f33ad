//! The report's words in English and Simplified Chinese. The report is rendered in proto
//! (agent and server print the same), so its catalog lives here; the console's own
//! catalog (`server/src/console/i18n.rs`) has the same `(key, en, zh-CN)` shape.

/// The language a report is printed in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    En,
    ZhCn,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::ZhCn => "zh-CN",
        }
    }

    /// `en`, `en-GB`, `zh`, `zh-CN`, … (case-insensitive).
    pub fn parse(code: &str) -> Option<Lang> {
        let c = code.trim().to_ascii_lowercase();
        if c == "en" || c.starts_with("en-") {
            Some(Lang::En)
        } else if c == "zh" || c.starts_with("zh-") {
            Some(Lang::ZhCn)
        } else {
            None
        }
    }

    /// The label for `key`; a key missing from the catalog shows as `⟦key⟧` so a test
    /// (and a reader) sees it.
    pub fn t(self, key: &str) -> String {
        match CATALOG.iter().find(|e| e.0 == key) {
            Some((_, en, zh)) => match self {
                Lang::En => (*en).to_owned(),
                Lang::ZhCn => (*zh).to_owned(),
            },
            None => format!("⟦{key}⟧"),
        }
    }
}

pub const CATALOG: &[(&str, &str, &str)] = &[
    ("title", "Service report", "服务报告"),
    ("order", "Work order", "工单"),
    ("customer", "Customer", "客户"),
    ("site", "Site", "现场"),
    ("asset", "Equipment", "设备"),
    ("serial", "serial", "序列号"),
    ("engineer", "Engineer", "工程师"),
    ("work_type", "Type of visit", "服务类型"),
    ("wt.inspection", "Inspection", "巡检"),
    ("wt.repair", "Repair", "维修"),
    ("wt.installation", "Installation", "安装"),
    ("arrived", "Arrived", "到达时间"),
    ("completed", "Completed", "完成时间"),
    ("status", "Status", "状态"),
    ("st.open", "Open", "待处理"),
    ("st.en-route", "En route", "在途"),
    ("st.on-site", "On site", "在现场"),
    ("st.on-hold", "On hold", "暂停"),
    ("st.completed", "Completed", "已完成"),
    ("work", "Fault and work done", "故障与处理"),
    ("reported", "Reported fault", "报修内容"),
    ("fault_code", "Fault code", "故障代码"),
    ("root_cause", "Root cause", "根本原因"),
    ("resolution", "Resolution", "处理结果"),
    ("checklist", "Checklist", "检查清单"),
    ("item", "Item", "项目"),
    ("answer", "Answer", "结果"),
    ("by", "By", "记录人"),
    ("earlier", "earlier", "先前记录"),
    ("other_answers", "Other answers", "其他记录"),
    ("unanswered", "not answered", "未填写"),
    ("yes", "Yes", "是"),
    ("no", "No", "否"),
    ("time", "Time", "工时"),
    ("activity", "Activity", "类别"),
    ("act.labour", "Labour", "人工"),
    ("act.travel", "Travel", "路程"),
    ("minutes", "Minutes", "分钟"),
    ("date", "Date", "日期"),
    ("total", "Total", "合计"),
    ("parts", "Parts used", "使用备件"),
    ("sku", "Part number", "备件编号"),
    ("qty", "Quantity", "数量"),
    ("photos", "Photos", "照片"),
    ("document", "Document", "文件"),
    (
        "not_available",
        "image not available here",
        "此处无法显示图像",
    ),
    ("signoff", "Customer sign-off", "客户签字确认"),
    ("signer", "Signed by", "签字人"),
    ("signed_at", "Signed", "签字时间"),
    ("signature", "Signature", "签名"),
    ("not_signed", "Not signed yet.", "尚未签字。"),
    ("rating", "Customer satisfaction", "客户满意度"),
    ("comment", "Comment", "意见"),
    ("not_rated", "Not rated yet.", "尚未评价。"),
    ("none", "None.", "无。"),
    ("footer", "Thank you for your trust.", "感谢您的信任。"),
];
