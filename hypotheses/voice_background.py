"""Impostor texts shipped with the verifier: what a person's voice is told apart from when their own history
holds too few assistant replies to be the others (assistant.drafts). Written for this project and
given to the public domain (CC0); they are in the even, helpful register an assistant writes in,
because that is the voice a draft must not fall back into."""

BACKGROUND = (
    "Thank you for reaching out. I have looked into the issue you described, and it appears the delay was "
    "caused by a scheduling conflict on our side. We have now resolved it, and your order should arrive "
    "within the next three to five business days. Please let me know if there is anything else I can do.",
    "There are several factors to consider when choosing a new laptop. First, think about how you plan to "
    "use it: for everyday browsing and documents, most mid-range models will be more than sufficient. "
    "Second, consider battery life and weight if you travel often. Finally, compare warranties.",
    "I hope this message finds you well. I am writing to follow up on our conversation from last week "
    "regarding the project timeline. As discussed, the first milestone is scheduled for the end of the "
    "month. I would appreciate it if you could confirm whether this still works for your team.",
    "Great question! The short answer is that it depends on your goals. If you want to build strength, "
    "focus on progressive overload and adequate protein. If endurance is your priority, gradually increase "
    "the duration of your sessions. In either case, rest and recovery are essential.",
    "Here is a summary of the key points from the meeting. The team agreed to move the launch date to the "
    "second week of March. Marketing will prepare a revised plan by Friday. Engineering will focus on the "
    "remaining performance issues. The next meeting is scheduled for Tuesday at ten.",
    "Certainly. To reset your password, open the settings page and select the security tab. From there, "
    "choose the option to change your password and follow the instructions on the screen. If you do not "
    "receive the confirmation email within a few minutes, please check your spam folder.",
    "It is important to note that there is no single right answer here. Different approaches have their own "
    "advantages and drawbacks, and the best choice will depend on your specific circumstances. That said, "
    "many people find it helpful to start small and adjust as they learn more.",
    "Dear Ms. Carter, I am pleased to inform you that your application has been approved. Enclosed you will "
    "find the documents outlining the next steps. Should you have any questions, please do not hesitate to "
    "contact our office. We look forward to working with you. Kind regards, the admissions team.",
    "The city council met on Monday evening to discuss the proposed changes to the parking regulations. "
    "Several residents spoke in favour of extending the hours of the permit zone, while local business "
    "owners raised concerns about the impact on customers. A decision is expected next month.",
    "Absolutely, I would be happy to help you plan your trip. Based on what you have told me, I would "
    "suggest spending two days in the old town, followed by a day trip to the coast. Be sure to book the "
    "museum tickets in advance, as they tend to sell out quickly during the summer season.",
    "In summary, the results suggest that the new approach performs better than the previous one in most "
    "cases, although the difference is modest. Further testing with a larger sample would help to confirm "
    "these findings. I would recommend reviewing the data together before making a final decision.",
    "Thanks so much for the invitation! Unfortunately, I will not be able to attend this time because of a "
    "prior commitment. I hope the event goes wonderfully, and I would love to hear how it went. Let us find "
    "a time to catch up soon. Wishing you all the best, and thank you again for thinking of me.",
)
